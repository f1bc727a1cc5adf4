import { join } from 'node:path';
import { createPool, migrate, type Pool } from '@calsync/service-kit';
import { captureLogger, createTestDatabase, type TestDatabase } from '@calsync/service-kit/testing';
import { pruneDeliveryLog, pruneFinishedBackfills, pruneInbox } from './inbox-retention';

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

test('prunes finished gap backfills past the retention, never an initial import or one still running', async () => {
  const row = (id: string, kind: string, status: string, age: string) =>
    pool.query(
      `INSERT INTO imports (request_id, user_id, kind, status, window_start, window_end, updated_at)
       VALUES ($1, 'user-1', $2, $3, now(), now() + interval '1 day', now() - $4::interval)`,
      [id, kind, status, age],
    );
  await row('poll:old-done', 'gap', 'completed', '40 days');
  await row('poll:old-failed', 'gap', 'failed', '40 days');
  await row('poll:old-running', 'gap', 'running', '40 days');
  await row('poll:recent', 'gap', 'completed', '2 days');
  await row('import:old', 'initial_import', 'completed', '40 days');
  expect(await pruneFinishedBackfills(pool, 30, 1)).toBe(2);
  const { rows } = await pool.query<{ request_id: string }>('SELECT request_id FROM imports ORDER BY request_id');
  expect(rows.map((kept) => kept.request_id)).toEqual(['import:old', 'poll:old-running', 'poll:recent']);
});

test('prunes delivery log rows older than the retention and keeps recent ones', async () => {
  await pool.query(
    `INSERT INTO delivery_log (user_id, delivery_key, event_type, outcome, received_at, recorded_at)
     SELECT 'user-' || (n % 3), 'old-' || n, 'invitee.created', 'applied', now() - interval '9 days', now() - interval '9 days'
     FROM generate_series(1, 12) AS n`,
  );
  await pool.query(
    `INSERT INTO delivery_log (user_id, delivery_key, event_type, outcome, received_at)
     SELECT 'user-' || (n % 3), 'recent-' || n, 'invitee.created', 'duplicate', now() - interval '1 day'
     FROM generate_series(1, 4) AS n`,
  );
  expect(await pruneDeliveryLog(pool, 7, 5)).toBe(12);
  const { rows } = await pool.query<{ delivery_key: string }>('SELECT delivery_key FROM delivery_log');
  expect(rows.map((row) => row.delivery_key).sort()).toEqual(['recent-1', 'recent-2', 'recent-3', 'recent-4']);
});
