import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { deserialize, serialize } from 'node:v8';

/** A module's collections by name, handed out live so that one snapshot holds every module's objects. */
export type Collections = Record<string, Map<unknown, unknown> | Set<unknown>>;

/** What a module keeps between runs: its collections and its sequence counter (paging keys). */
export interface DurableState {
  collections: Collections;
  seq?: number;
}

/** A module whose state the simulator can save and restore. */
export interface Durable {
  durableState(): DurableState;
  restoreState(saved: DurableState): void;
}

/** Replaces every collection in `target` with the saved one of the same name (none saved: empty). */
export function refill(target: Collections, saved: Collections): void {
  for (const [name, collection] of Object.entries(target)) {
    const from = saved[name];
    collection.clear();
    if (collection instanceof Map) {
      for (const [key, value] of (from as Map<unknown, unknown> | undefined) ?? []) collection.set(key, value);
    } else {
      for (const value of (from as Set<unknown> | undefined) ?? []) collection.add(value);
    }
  }
}

interface StateFile {
  version: 1;
  baseUrl: string;
  clockOffsetMs: number;
  modules: Record<string, DurableState>;
}

/**
 * Saves and loads the simulator's state in one file. One v8 serialisation of every module
 * together keeps shared objects shared (a subscription's user is the directory's user after a
 * load too). Written to a temporary file and renamed, so a crash leaves the previous save.
 */
export function createStateFile(path: string, baseUrl: string) {
  return {
    load(modules: Record<string, Durable>): { clockOffsetMs: number } | undefined {
      if (!existsSync(path)) return undefined;
      const saved = deserialize(readFileSync(path)) as StateFile;
      if (saved.version !== 1) throw new Error(`${path} was written by another simulator version; delete it`);
      if (saved.baseUrl !== baseUrl) {
        throw new Error(
          `${path} holds a simulator at ${saved.baseUrl}, but this one is at ${baseUrl}: every saved URI would be wrong. Use the same address, or delete the file to start empty`,
        );
      }
      for (const [name, module] of Object.entries(modules)) {
        module.restoreState(saved.modules[name] ?? { collections: {} });
      }
      return { clockOffsetMs: saved.clockOffsetMs };
    },
    save(modules: Record<string, Durable>, clockOffsetMs: number): void {
      const file: StateFile = {
        version: 1,
        baseUrl,
        clockOffsetMs,
        modules: Object.fromEntries(Object.entries(modules).map(([name, module]) => [name, module.durableState()])),
      };
      writeFileSync(`${path}.tmp`, serialize(file), { mode: 0o600 });
      renameSync(`${path}.tmp`, path);
    },
  };
}
