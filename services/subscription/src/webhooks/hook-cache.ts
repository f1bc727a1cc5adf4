import { getHeapStatistics } from 'node:v8';
import { Client } from 'pg';
import { postgresKeepAlive, type Logger } from '@calsync/service-kit';
import type { WebhookState } from './webhook-repository';

/**
 * What verification needs of a hook, with its signing key already opened. 100,000 of these stay
 * in memory, so each holds only its own strings: the event set, state and scope are shared
 * (see toCachedHook), and the key is kept as the text Calendly hashes with.
 */
export interface CachedHook {
  hookId: string;
  userId: string;
  calendlyUserUri: string;
  /** Shared by every hook subscribed to the same events: never modified. */
  events: ReadonlySet<string>;
  scope: 'user' | 'organization';
  legacy: boolean;
  /** A hook being removed refuses deliveries. */
  refusing: boolean;
  /** Its state as last synced with Calendly (labels the verification metrics, never a user). */
  state: WebhookState;
  /**
   * The subscription's own key, the text Calendly uses as the HMAC key (in memory only, never
   * logged); null when the OAuth application key signs its deliveries. A string costs a third
   * of a Buffer per hook and pins no slab of Node's shared buffer pool.
   */
  signingKey: string | null;
}

export type CacheLookup = 'hit' | 'miss' | 'bypass';

const legacyKeyPrefix = 'legacy:';

/**
 * The cache key of a legacy hook: the legacy URL finds it by its creator (the envelope's
 * created_by), never by hook id. The webhooks trigger notifies this key when such a row changes.
 */
export const legacyHookKey = (creatorUri: string) => `${legacyKeyPrefix}${creatorUri}`;

/** The key a hook is found by: its creator for a legacy hook, else the hook id of its callback path. */
export const hookCacheKey = (hook: Pick<CachedHook, 'hookId' | 'legacy' | 'calendlyUserUri'>) =>
  hook.legacy ? legacyHookKey(hook.calendlyUserUri) : hook.hookId;

/** The creator a legacy key names, or undefined for a hook id. */
export const creatorOfLegacyKey = (key: string) =>
  key.startsWith(legacyKeyPrefix) ? key.slice(legacyKeyPrefix.length) : undefined;

export interface HookCache {
  /** The hook by its key (hookCacheKey), from memory when it is there and the cache can be trusted, else from Postgres. */
  get(key: string): Promise<CachedHook | undefined>;
  /** Connects the change listener; resolves once the cache is trusted. */
  start(): Promise<void>;
  /**
   * Loads every hook, a page at a time, so no delivery after a start pays for a miss. Safe while
   * serving: a hook that changes while its page is read is left to be loaded on demand.
   * Resolves the number of hooks loaded (it stops early if the listener is lost). Runs by itself
   * whenever the listener (re)connects, when `loadPage` is given.
   */
  warm(): Promise<number>;
  stop(): Promise<void>;
  /** True while change notifications flow: only then are entries served from memory. */
  readonly trusted: boolean;
  /**
   * True once a warm-up has read every row and nothing was evicted since: an unknown key is then
   * answered from memory too, so made-up hook ids and creators cost no query.
   */
  readonly complete: boolean;
  /** Lookups so far by how they were answered. */
  stats(): Record<CacheLookup, number> & { size: number };
}

/** What a cached hook costs in live heap (the verify bench measures about 370 bytes), rounded up. */
const bytesPerHook = 512;
/**
 * Beyond this many hooks the oldest entries make room: a million at most, and never more than
 * fill half of the heap V8 was given (the service runs with --max-old-space-size=192, see its
 * README: about 240,000 hooks), so a fleet larger than the heap costs misses served from
 * Postgres, never a process out of memory.
 */
const maxEntries = Math.min(1_000_000, Math.floor(getHeapStatistics().heap_size_limit / 2 / bytesPerHook));
/** Unknown ids remembered, so a flood of made-up ids does not become a flood of queries. */
const maxAbsent = 10_000;

/**
 * An in-memory map from hook key (hookCacheKey) to hook, backed by Postgres and kept correct across replicas
 * with LISTEN/NOTIFY: the webhooks table notifies `<schema>.webhooks` with the hook key on every
 * change that matters, and each replica forgets that entry. While the listener is down nothing
 * is served from memory (a change could go unheard); when it is back, the cache starts empty.
 */
export function createHookCache(options: {
  databaseUrl: string;
  schema: string;
  /** Reads the hook a key names (hookCacheKey). */
  load: (key: string) => Promise<CachedHook | undefined>;
  /** A page of hooks in id order after `after`, for warm(). */
  loadPage?: (after: string, limit: number) => Promise<CachedHook[]>;
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
  let complete = false;
  // Keys notified since the running (or last) warm-up began: read again before being trusted.
  let changedSinceWarm: Set<string> | undefined;
  // Bumped whenever everything is forgotten; ids forgotten while a warm page is read are noted.
  let generation = 0;
  const warmTrackers = new Set<Set<string>>();
  let client: Client | undefined;
  let retryTimer: NodeJS.Timeout | undefined;
  let retryDelayMs = 250;

  const count = (lookup: CacheLookup) => {
    counts[lookup] += 1;
    options.onLookup?.(lookup);
  };

  const forget = (key: string) => {
    hooks.delete(key);
    absent.delete(key);
    const inFlight = loading.get(key);
    if (inFlight) inFlight.stale = true;
    for (const tracker of warmTrackers) tracker.add(key);
    if (changedSinceWarm) {
      changedSinceWarm.add(key);
      // Churn beyond this is no longer worth remembering: unknown keys go back to Postgres.
      if (changedSinceWarm.size > maxAbsent) {
        complete = false;
        changedSinceWarm = undefined;
      }
    }
  };

  const clear = () => {
    hooks.clear();
    absent.clear();
    for (const inFlight of loading.values()) inFlight.stale = true;
    generation += 1;
    complete = false;
    changedSinceWarm = undefined;
  };

  const remember = (key: string, hook: CachedHook | undefined) => {
    if (hook) {
      if (hooks.size >= maxEntries) {
        hooks.delete(hooks.keys().next().value!);
        complete = false;
      }
      hooks.set(key, hook);
      absent.delete(key);
    } else {
      if (absent.size >= maxAbsent) absent.delete(absent.values().next().value!);
      absent.add(key);
    }
  };

  const load = (key: string): Promise<CachedHook | undefined> => {
    const existing = loading.get(key);
    if (existing) return existing.promise;
    const entry = {
      stale: false,
      promise: options.load(key).then(
        (hook) => {
          loading.delete(key);
          if (trusted && !entry.stale) {
            remember(key, hook);
            changedSinceWarm?.delete(key);
          }
          return hook;
        },
        (error: unknown) => {
          loading.delete(key);
          throw error;
        },
      ),
    };
    loading.set(key, entry);
    return entry.promise;
  };

  /** Stops trusting memory and lets go of the listener connection, whatever state it is in. */
  const drop = async () => {
    trusted = false;
    clear();
    const old = client;
    client = undefined;
    old?.removeAllListeners();
    old?.on('error', () => undefined);
    await old?.end().catch(() => undefined);
  };

  const lost = (reason: string, error?: unknown) => {
    if (!trusted && !client) return;
    void drop();
    if (stopped) return;
    log.warn({ err: error, reason, retryInMs: retryDelayMs }, 'hook cache listener lost; serving from postgres');
    retryTimer = setTimeout(() => void listen().catch(() => undefined), retryDelayMs);
    retryTimer.unref();
    retryDelayMs = Math.min(retryDelayMs * 2, 5_000);
  };

  async function warm(): Promise<number> {
    if (!options.loadPage) return 0;
    const startedIn = generation;
    const changed = new Set<string>();
    changedSinceWarm = changed;
    let after = '';
    let loaded = 0;
    let readEveryRow = false;
    while (trusted && generation === startedIn && hooks.size < maxEntries) {
      const forgotten = new Set<string>();
      warmTrackers.add(forgotten);
      let page: CachedHook[];
      try {
        page = await options.loadPage(after, 2_000);
      } finally {
        warmTrackers.delete(forgotten);
      }
      if (page.length === 0) readEveryRow = true;
      if (page.length === 0 || !trusted || generation !== startedIn) break;
      for (const hook of page) {
        const key = hookCacheKey(hook);
        if (forgotten.has(key) || hooks.has(key) || loading.has(key)) continue;
        remember(key, hook);
        loaded += 1;
      }
      after = page.at(-1)!.hookId;
    }
    if (readEveryRow && trusted && generation === startedIn && changedSinceWarm === changed) complete = true;
    return loaded;
  }

  const listen = async (): Promise<void> => {
    const next = new Client({
      connectionString: options.databaseUrl,
      ...postgresKeepAlive,
      application_name: 'hook-cache',
    });
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
    if (options.loadPage) {
      const started = Date.now();
      void warm().then(
        (hooks) => log.info({ hooks, ms: Date.now() - started }, 'hook cache warmed'),
        (error: unknown) => log.warn({ err: error }, 'hook cache warm-up failed; hooks load on demand'),
      );
    }
  };

  return {
    get trusted() {
      return trusted;
    },
    get complete() {
      return complete;
    },
    async get(key) {
      if (!trusted) {
        count('bypass');
        return options.load(key);
      }
      const hook = hooks.get(key);
      if (hook || absent.has(key) || (complete && !changedSinceWarm?.has(key))) {
        count('hit');
        return hook;
      }
      count('miss');
      return load(key);
    },
    start: () => listen(),
    warm,
    async stop() {
      stopped = true;
      clearTimeout(retryTimer);
      await drop();
    },
    stats: () => ({ ...counts, size: hooks.size }),
  };
}
