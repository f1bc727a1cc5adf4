import { createPool, resealAll, type Pool } from '@calsync/service-kit';
import { captureLogger, createTestDatabase, rotationSealers, type TestDatabase } from '@calsync/service-kit/testing';
import { migrateSchema } from '../migrations';
import { signingKeyContext } from './hook-loader';
import { sealedTables } from './signing-key-reseal';
import { createWebhookRepository } from './webhook-repository';
import { newHookId, newSigningKey } from './webhook-secrets';

const { log } = captureLogger('reseal-test', 'silent');
const { before, after } = rotationSealers();

let database: TestDatabase;
let pool: Pool;

beforeAll(async () => {
  database = await createTestDatabase('reseal');
  await migrateSchema({ DATABASE_URL: database.url, DATABASE_SCHEMA: 'subscription' }, log);
  pool = createPool({ url: database.url, schema: 'subscription', log });
});

afterAll(async () => {
  await pool.end();
  await database.drop();
});

it('re-seals every signing key under the active key, keeping each key and its row binding', async () => {
  const repository = createWebhookRepository(pool);
  const keys = new Map<string, string>();
  const hooks = Array.from({ length: 7 }, (_, i) => {
    const hookId = newHookId();
    const key = newSigningKey();
    keys.set(hookId, key);
    return {
      hookId,
      userId: `u${i}`,
      calendlyUserUri: `https://api.calendly.com/users/U${i}`,
      calendlyOrganizationUri: 'https://api.calendly.com/organizations/O',
      callbackUrl: `https://calsync.test/webhooks/calendly/${hookId}`,
      events: ['invitee.created'],
      state: 'active' as const,
      signingKeySource: 'subscription' as const,
      signingKeySealed: before.seal(key, signingKeyContext(hookId)),
    };
  });
  await repository.insertMany(hooks);

  expect(await resealAll({ pool, sealer: after, log, tables: sealedTables, batchSize: 3 })).toEqual({
    resealed: { webhooks: 7 },
    unreadable: 0,
    passes: 2,
    settled: true,
  });
  for (const hook of hooks) {
    const row = await repository.findByHookId(hook.hookId);
    expect(after.keyIdOf(row!.signingKeySealed!)).toBe('new');
    expect(after.open(row!.signingKeySealed!, signingKeyContext(hook.hookId))).toBe(keys.get(hook.hookId));
  }
  expect(await resealAll({ pool, sealer: after, log, tables: sealedTables, batchSize: 500 })).toEqual({
    resealed: { webhooks: 0 },
    unreadable: 0,
    passes: 1,
    settled: true,
  });
});
