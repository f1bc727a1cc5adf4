import { Client } from 'pg';
import type { Logger } from '@calsync/service-kit';

/** What verification needs of a hook, with its signing key already opened. */
export interface CachedHook {
  hookId: string;
  userId: string;
  calendlyUserUri: string;
  events: ReadonlySet<string>;
  scope: 'user' | 'organization';
  legacy: boolean;
  /** A hook being removed refuses deliveries. */
  refusing: boolean;
  /** The subscription's own key; null when the OAuth application key signs its deliveries. */
  signingKey: Buffer | null;
}

export type CacheLookup = 'hit' | 'miss' | 'bypass';

export interface HookCache {
  /** The hook, from memory when it is there and the cache can be trusted, else from Postgres. */
  get(hookId: string): Promise<CachedHook | undefined>;
  /** Connects the change listener; resolves once the cache is trusted. */
  start(): Promise<void>;
  stop(): Promise<void>;
  /** True while change notifications flow: only then are entries served from memory. */
  readonly trusted: boolean;
  /** Lookups so far by how they were answered. */
  stats(): Record<CacheLookup, number> & { size: number };
}

/** Beyond this many hooks the oldest entries make room (100,000 hooks take about 50 MB). */
const maxEntries = 1_000_000;
/** Unknown ids remembered, so a flood of made-up ids does not become a flood of queries. */
const maxAbsent = 10_000;

/**
 * An in-memory map from hook id to hook, backed by Postgres and kept correct across replicas
 * with LISTEN/NOTIFY: the webhooks table notifies `<schema>.webhooks` with the hook id on every
 * change that matters, and each replica forgets that entry. While the listener is down nothing
 * is served from memory (a change could go unheard); when it is back, the cache starts empty.
 */
export function createHookCache(options: {
  databaseUrl: string;
  schema: string;
  load: (hookId: string) => Promise<CachedHook | undefined>;
  log: Logger;
  onLookup?: (lookup: CacheLookup) => void;
}): HookCache {
  const { log } = options;
  const channel = `${options.schema}.webhooks`;
  const hooks = new Map<string, CachedHook>();
  const absent = new Set<string>();
  // Loads in flight; `stale` turns true when the hook changes while its row is being read.
  const loading = new Map<string, { promise: Promise<CachedHook | undefined>; stale: boolean }>();
  const counts: Record<CacheLookup, number> = { hit: 0, miss: 0, bypass: 0 };
  let trusted = false;
  let stopped = false;
  let client: Client | undefined;
  let retryTimer: NodeJS.Timeout | undefined;
  let retryDelayMs = 250;

  const count = (lookup: CacheLookup) => {
    counts[lookup] += 1;
    options.onLookup?.(lookup);
  };

  const forget = (hookId: string) => {
    hooks.delete(hookId);
    absent.delete(hookId);
    const inFlight = loading.get(hookId);
    if (inFlight) inFlight.stale = true;
  };

  const clear = () => {
    hooks.clear();
    absent.clear();
    for (const inFlight of loading.values()) inFlight.stale = true;
  };

  const remember = (hookId: string, hook: CachedHook | undefined) => {
    if (hook) {
      if (hooks.size >= maxEntries) hooks.delete(hooks.keys().next().value!);
      hooks.set(hookId, hook);
    } else {
      if (absent.size >= maxAbsent) absent.delete(absent.values().next().value!);
      absent.add(hookId);
    }
  };

  const load = (hookId: string): Promise<CachedHook | undefined> => {
    const existing = loading.get(hookId);
    if (existing) return existing.promise;
    const entry = {
      stale: false,
      promise: options.load(hookId).then(
        (hook) => {
          loading.delete(hookId);
          if (trusted && !entry.stale) remember(hookId, hook);
          return hook;
        },
        (error: unknown) => {
          loading.delete(hookId);
          throw error;
        },
      ),
    };
    loading.set(hookId, entry);
    return entry.promise;
  };

  const lost = (reason: string, error?: unknown) => {
    if (!trusted && !client) return;
    trusted = false;
    clear();
    const old = client;
    client = undefined;
    old?.removeAllListeners();
    old?.on('error', () => undefined);
    void old?.end().catch(() => undefined);
    if (stopped) return;
    log.warn({ err: error, reason, retryInMs: retryDelayMs }, 'hook cache listener lost; serving from postgres');
    retryTimer = setTimeout(() => void listen().catch(() => undefined), retryDelayMs);
    retryTimer.unref();
    retryDelayMs = Math.min(retryDelayMs * 2, 5_000);
  };

  const listen = async (): Promise<void> => {
    const next = new Client({ connectionString: options.databaseUrl, keepAlive: true, application_name: 'hook-cache' });
    client = next;
    next.on('notification', (message) => {
      if (message.channel === channel && message.payload) forget(message.payload);
    });
    next.on('error', (error) => lost('error', error));
    next.on('end', () => lost('end'));
    try {
      await next.connect();
      await next.query(`LISTEN "${channel}"`);
    } catch (error) {
      lost('connect failed', error);
      throw error;
    }
    if (stopped) {
      await next.end().catch(() => undefined);
      return;
    }
    // Whatever changed before LISTEN took effect went unheard: start from nothing.
    clear();
    trusted = true;
    retryDelayMs = 250;
    log.info({ channel }, 'hook cache listening');
  };

  return {
    get trusted() {
      return trusted;
    },
    async get(hookId) {
      if (!trusted) {
        count('bypass');
        return options.load(hookId);
      }
      const hook = hooks.get(hookId);
      if (hook || absent.has(hookId)) {
        count('hit');
        return hook;
      }
      count('miss');
      return load(hookId);
    },
    start: () => listen(),
    async stop() {
      stopped = true;
      clearTimeout(retryTimer);
      trusted = false;
      clear();
      const old = client;
      client = undefined;
      old?.removeAllListeners();
      old?.on('error', () => undefined);
      await old?.end().catch(() => undefined);
    },
    stats: () => ({ ...counts, size: hooks.size }),
  };
}
