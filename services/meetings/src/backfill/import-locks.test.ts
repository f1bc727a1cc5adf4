import { Pool } from 'pg';
import { captureLogger, createTestDatabase, waitFor, type TestDatabase } from '@calsync/service-kit/testing';
import { createImportLocks, type ImportLocks } from './import-locks';

const { log } = captureLogger('meetings');
let database: TestDatabase;
let admin: Pool;
const opened: ImportLocks[] = [];

/** The locks of one meetings instance (each has its own lock connection). */
function instance(): ImportLocks {
  const locks = createImportLocks({ databaseUrl: database.url, log });
  opened.push(locks);
  return locks;
}

beforeAll(async () => {
  database = await createTestDatabase('meetings_import_locks');
  admin = new Pool({ connectionString: database.url, max: 2 });
});

afterAll(async () => {
  await Promise.all(opened.map((locks) => locks.close()));
  await admin.end();
  await database.drop();
});

it('lets one run of an import hold it at a time, in one instance and across instances', async () => {
  const here = instance();
  const there = instance();
  const first = await here.take('import-1');
  expect(first).toBeDefined();
  // Postgres's advisory locks are re-entrant within a session: the instance keeps its own.
  expect(await here.take('import-1')).toBeUndefined();
  expect(await there.take('import-1')).toBeUndefined();
  // Other imports are not held up.
  const other = await there.take('import-2');
  expect(other).toBeDefined();

  await first!.release();
  const next = await there.take('import-1');
  expect(next).toBeDefined();
  expect(await here.take('import-1')).toBeUndefined();
  await next!.release();
  await other!.release();
  const again = await here.take('import-1');
  expect(again).toBeDefined();
  await again!.release();
});

it('answers a second take in the same instance at once, before the first has its lock', async () => {
  const here = instance();
  const [one, two] = await Promise.all([here.take('import-3'), here.take('import-3')]);
  expect([one, two].filter(Boolean)).toHaveLength(1);
  await (one ?? two)!.release();
});

it('tells the holder when its lock is lost with the connection, and frees the import for others', async () => {
  const here = instance();
  const there = instance();
  const held = (await here.take('import-4'))!;
  expect(held.lost.aborted).toBe(false);
  await admin.query(
    `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
     WHERE datname = current_database() AND application_name = 'meetings-import-locks' AND pid IN (
       SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND database = (
         SELECT oid FROM pg_database WHERE datname = current_database()))`,
  );
  await waitFor(() => held.lost.aborted || undefined, { what: 'the holder to be told its lock is lost' });
  const taken = await there.take('import-4');
  expect(taken).toBeDefined();
  await taken!.release();
  // Releasing a lost lock changes nothing, and the instance connects again for its next import.
  await held.release();
  const reconnected = await here.take('import-5');
  expect(reconnected).toBeDefined();
  expect(reconnected!.lost.aborted).toBe(false);
  await reconnected!.release();
});

it('releases every lock it holds when closed', async () => {
  const closing = instance();
  const there = instance();
  expect(await closing.take('import-6')).toBeDefined();
  await closing.close();
  const taken = await there.take('import-6');
  expect(taken).toBeDefined();
  await taken!.release();
  await expect(closing.take('import-7')).rejects.toThrow(/closed/);
});

const lockSessions = async () =>
  (
    await admin.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_stat_activity
        WHERE datname = current_database() AND application_name = 'meetings-import-locks'`,
    )
  ).rows[0]!.n;

it('ends a connection that was still being opened when it closed, and takes nothing on it', async () => {
  const before = await lockSessions();
  const closing = instance();
  const taking = closing.take('import-8');
  await closing.close();
  await expect(taking).rejects.toThrow(/closed/);
  await waitFor(async () => (await lockSessions()) === before || undefined, {
    what: 'the connection opened during close to end',
  });
  const taken = await instance().take('import-8');
  expect(taken).toBeDefined();
  await taken!.release();
});
