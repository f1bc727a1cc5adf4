import { randomBytes } from 'node:crypto';
import { Client } from 'pg';
import { createPool, createSealer, type Pool } from '@calsync/service-kit';
import { captureLogger, createTestDatabase, waitFor, type TestDatabase } from '@calsync/service-kit/testing';
import { migrateSchema } from '../migrations';
import { createHookCache, legacyHookKey, type HookCache } from './hook-cache';
import { createHookLoader, signingKeyContext } from './hook-loader';
import { createWebhookRepository, type NewWebhook, type WebhookRepository } from './webhook-repository';
import { newHookId, newSigningKey } from './webhook-secrets';

const schema = 'subscription';
const { log } = captureLogger('hook-cache-test', 'silent');
const sealer = createSealer({ keys: new Map([['k1', randomBytes(32)]]), activeKeyId: 'k1' });

let database: TestDatabase;
let pool: Pool;
let repository: WebhookRepository;
const caches: HookCache[] = [];

function newHook(userId: string, key = newSigningKey()): NewWebhook {
  const hookId = newHookId();
  return {
    hookId,
    userId,
    calendlyUserUri: `https://api.calendly.com/users/${userId}`,
    calendlyOrganizationUri: 'https://api.calendly.com/organizations/ORG',
    callbackUrl: `https://calsync.test/webhooks/calendly/${hookId}`,
    events: ['invitee.created'],
    state: 'active',
    signingKeySource: 'subscription',
    signingKeySealed: sealer.seal(key, signingKeyContext(hookId)),
  };
}

async function startCache(): Promise<HookCache> {
  const loader = createHookLoader(repository, sealer);
  const cache = createHookCache({ databaseUrl: database.url, schema, load: loader.load, log });
  caches.push(cache);
  await cache.start();
  return cache;
}

beforeAll(async () => {
  database = await createTestDatabase('hook_cache');
  await migrateSchema({ DATABASE_URL: database.url, DATABASE_SCHEMA: schema }, log);
  pool = createPool({ url: database.url, schema, log });
  repository = createWebhookRepository(pool);
});

afterAll(async () => {
  for (const cache of caches) await cache.stop();
  await pool.end();
  await database.drop();
});

it('answers from memory after the first lookup and opens the sealed key', async () => {
  const key = newSigningKey();
  const hook = newHook('u-memory', key);
  // Inserted before the cache listens, so no late notification of the insert empties the entry.
  await repository.insert(hook);
  const cache = await startCache();
  const first = await cache.get(hook.hookId);
  expect(first).toMatchObject({ userId: 'u-memory', refusing: false });
  expect(first!.signingKey).toBe(key);
  await cache.get(hook.hookId);
  expect(cache.stats()).toMatchObject({ miss: 1, hit: 1, size: 1 });
});

it('hooks subscribed to the same events share one set, so 100,000 cached hooks do not hold 100,000', async () => {
  const [a, b] = [newHook('u-share-a'), newHook('u-share-b')];
  const other = { ...newHook('u-share-c'), events: ['invitee.created', 'invitee.canceled'] };
  await repository.insertMany([a, b, other]);
  const cache = await startCache();
  const [first, second, third] = [await cache.get(a.hookId), await cache.get(b.hookId), await cache.get(other.hookId)];
  expect(first!.events).toBe(second!.events);
  expect([...first!.events]).toEqual(['invitee.created']);
  expect([...third!.events]).toEqual(['invitee.created', 'invitee.canceled']);
});

it('every replica refuses a hook as soon as another marks it removed or deletes it', async () => {
  const [replicaA, replicaB] = [await startCache(), await startCache()];
  const removed = newHook('u-removed');
  const deleted = newHook('u-deleted');
  await repository.insertMany([removed, deleted]);
  for (const cache of [replicaA, replicaB]) {
    expect((await cache.get(removed.hookId))?.refusing).toBe(false);
    expect(await cache.get(deleted.hookId)).toBeDefined();
  }
  await createWebhookRepository(pool).markUserRemoving('u-removed');
  await repository.delete([deleted.hookId]);
  for (const cache of [replicaA, replicaB]) {
    await waitFor(async () => (await cache.get(removed.hookId))?.refusing === true);
    await waitFor(async () => (await cache.get(deleted.hookId)) === undefined);
  }
});

it('remembers an unknown id, and forgets that once the hook is created', async () => {
  const cache = await startCache();
  const hook = newHook('u-late');
  expect(await cache.get(hook.hookId)).toBeUndefined();
  expect(await cache.get(hook.hookId)).toBeUndefined();
  expect(cache.stats()).toMatchObject({ miss: 1, hit: 1 });
  await repository.insert(hook);
  await waitFor(async () => (await cache.get(hook.hookId)) !== undefined);
});

it('does not notify for bookkeeping writes, so deliveries do not empty the caches', async () => {
  const hook = newHook('u-busy');
  const marker = newHook('u-marker');
  await repository.insertMany([hook, marker]);
  const listener = new Client({ connectionString: database.url });
  await listener.connect();
  const heard: string[] = [];
  listener.on('notification', (message) => heard.push(message.payload ?? ''));
  await listener.query(`LISTEN "${schema}.webhooks"`);
  try {
    await repository.recordDeliveries(new Map([[hook.hookId, new Date()]]));
    await repository.update(hook.hookId, { lastVerifiedAt: new Date(), lastError: 'x', downSince: new Date() });
    // Notifications arrive in commit order: once the marker's is heard, anything earlier was too.
    await repository.update(marker.hookId, { state: 'disabled' });
    await waitFor(async () => heard.includes(marker.hookId));
    expect(heard).toEqual([marker.hookId]);
  } finally {
    await listener.end();
  }
});

it('serves from Postgres while its listener is down and starts empty when it is back', async () => {
  const cache = await startCache();
  const hook = newHook('u-listener');
  await repository.insert(hook);
  await cache.get(hook.hookId);
  await pool.query(
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'hook-cache' AND datname = $1",
    [database.name],
  );
  await waitFor(async () => !cache.trusted);
  // Changed while nobody listened: must not be answered from the old memory.
  await repository.update(hook.hookId, { state: 'removing' });
  expect((await cache.get(hook.hookId))?.refusing).toBe(true);
  expect(cache.stats().bypass).toBeGreaterThan(0);
  await waitFor(async () => cache.trusted, { timeoutMs: 10_000 });
  expect((await cache.get(hook.hookId))?.refusing).toBe(true);
});

it('warms itself with every hook when it starts listening, so the first delivery is a hit', async () => {
  const fresh = await createTestDatabase('hook_cache_warm');
  await migrateSchema({ DATABASE_URL: fresh.url, DATABASE_SCHEMA: schema }, log);
  const freshPool = createPool({ url: fresh.url, schema, log });
  try {
    const freshRepository = createWebhookRepository(freshPool);
    const seeded = Array.from({ length: 4_500 }, (_, i) => newHook(`u-warm-${i}`));
    await freshRepository.insertMany(seeded);
    const loader = createHookLoader(freshRepository, sealer);
    const cache = createHookCache({
      databaseUrl: fresh.url,
      schema,
      load: loader.load,
      loadPage: loader.loadPage,
      log,
    });
    caches.push(cache);
    await cache.start();
    await waitFor(async () => cache.stats().size === seeded.length);
    expect(await cache.get(seeded[4_321]!.hookId)).toMatchObject({ userId: 'u-warm-4321' });
    expect(cache.stats()).toMatchObject({ hit: 1, miss: 0 });
    await freshRepository.update(seeded[0]!.hookId, { state: 'removing' });
    await waitFor(async () => (await cache.get(seeded[0]!.hookId))?.refusing === true);
    await cache.stop();
  } finally {
    await freshPool.end();
    await fresh.drop();
  }
});

it('once warmed with every hook, answers made-up ids and creators without a query, and still hears of new hooks', async () => {
  const fresh = await createTestDatabase('hook_cache_complete');
  await migrateSchema({ DATABASE_URL: fresh.url, DATABASE_SCHEMA: schema }, log);
  const freshPool = createPool({ url: fresh.url, schema, log });
  try {
    const freshRepository = createWebhookRepository(freshPool);
    const seeded = Array.from({ length: 3 }, (_, i) => newHook(`u-complete-${i}`));
    await freshRepository.insertMany(seeded);
    const loader = createHookLoader(freshRepository, sealer);
    const loads: string[] = [];
    const cache = createHookCache({
      databaseUrl: fresh.url,
      schema,
      load: (key) => {
        loads.push(key);
        return loader.load(key);
      },
      loadPage: loader.loadPage,
      log,
    });
    caches.push(cache);
    await cache.start();
    await waitFor(async () => cache.complete);
    for (let i = 0; i < 50; i += 1) {
      expect(await cache.get(newHookId())).toBeUndefined();
      expect(await cache.get(legacyHookKey(`https://api.calendly.com/users/made-up-${i}`))).toBeUndefined();
    }
    expect(await cache.get(seeded[1]!.hookId)).toMatchObject({ userId: 'u-complete-1' });
    expect(loads).toEqual([]);

    // A hook created later is announced, read once, and served.
    const late = newHook('u-complete-late');
    await freshRepository.insert(late);
    await waitFor(async () => (await cache.get(late.hookId))?.userId === 'u-complete-late');
    expect(loads).toEqual([late.hookId]);
    await cache.stop();
  } finally {
    await freshPool.end();
    await fresh.drop();
  }
});
