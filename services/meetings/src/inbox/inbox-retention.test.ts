import { join } from 'node:path';
import { createPool, migrate, type Pool } from '@calsync/service-kit';
import { captureLogger, createTestDatabase, type TestDatabase } from '@calsync/service-kit/testing';
import { pruneInbox } from './inbox-retention';

const { log } = captureLogger('meetings');
let database: TestDatabase;
let pool: Pool;

beforeAll(async () => {
  database = await createTestDatabase('meetings_inbox');
  await migrate({ url: database.url, schema: 'meetings', dir: join(__dirname, '..', '..', 'migrations'), log });
  pool = createPool({ url: database.url, schema: 'meetings', log });
});

afterAll(async () => {
  await pool.end();
  await database.drop();
});

test('prunes only keys older than the retention, in batches, and keeps recent ones', async () => {
  await pool.query(
    `INSERT INTO inbox (user_id, delivery_key, event_type, outcome, applied_at)
     SELECT 'user-' || (n % 3), 'old-' || n, 'invitee.created', 'applied', now() - interval '40 days'
     FROM generate_series(1, 25) AS n`,
  );
  await pool.query(
    `INSERT INTO inbox (user_id, delivery_key, event_type, outcome, applied_at)
     SELECT 'user-' || (n % 3), 'recent-' || n, 'invitee.created', 'applied', now() - interval '2 days'
     FROM generate_series(1, 7) AS n`,
  );
  expect(await pruneInbox(pool, 30, 10)).toBe(25);
  const { rows } = await pool.query<{ delivery_key: string }>('SELECT delivery_key FROM inbox');
  expect(rows).toHaveLength(7);
  expect(rows.every((row) => row.delivery_key.startsWith('recent-'))).toBe(true);
  expect(await pruneInbox(pool, 30, 10)).toBe(0);
});
