import { Pool } from 'pg';
import { lockForTransaction, transactionLockSql, withAdvisoryLock, withAdvisoryLockIfFree } from './advisory-locks';
import { inTransaction } from './postgres';
import { createTestDatabase, type TestDatabase } from './testing/infra';

let database: TestDatabase;
let pool: Pool;

beforeAll(async () => {
  database = await createTestDatabase('kit_locks');
  pool = new Pool({ connectionString: database.url, max: 4 });
});

afterAll(async () => {
  await pool.end();
  await database.drop();
});

const key = { namespace: 'test.locks', name: 'user-1' };

/** A promise and the function that settles it, to hold a lock exactly as long as a test says. */
function gate() {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { opened, open };
}

it('makes a second holder wait until the first is done', async () => {
  const order: string[] = [];
  const held = gate();
  const taken = gate();
  const first = withAdvisoryLock(pool, key, async () => {
    order.push('first in');
    taken.open();
    await held.opened;
    order.push('first out');
  });
  await taken.opened;
  const second = withAdvisoryLock(pool, key, async () => {
    order.push('second in');
  });
  expect(await withAdvisoryLockIfFree(pool, key, async () => 'never')).toEqual({ locked: false });
  held.open();
  await Promise.all([first, second]);
  expect(order).toEqual(['first in', 'first out', 'second in']);
});

it('releases the lock when the work fails, and other names are never blocked', async () => {
  await expect(
    withAdvisoryLock(pool, key, async () => {
      expect(await withAdvisoryLockIfFree(pool, { ...key, name: 'user-2' }, async () => 'other')).toEqual({
        locked: true,
        value: 'other',
      });
      throw new Error('work failed');
    }),
  ).rejects.toThrow('work failed');
  expect(await withAdvisoryLockIfFree(pool, key, async () => 'free again')).toEqual({
    locked: true,
    value: 'free again',
  });
});

it('holds a transaction lock until the transaction ends', async () => {
  const held = gate();
  const taken = gate();
  const transaction = inTransaction(pool, async (client) => {
    await lockForTransaction(client, key);
    taken.open();
    await held.opened;
  });
  await taken.opened;
  expect(await withAdvisoryLockIfFree(pool, key, async () => 'x')).toEqual({ locked: false });
  held.open();
  await transaction;
  expect(await withAdvisoryLockIfFree(pool, key, async () => 'x')).toEqual({ locked: true, value: 'x' });
});

it('builds the same transaction lock into a larger statement, taken only for the rows it runs on', async () => {
  const lockIn = (client: { query: Pool['query'] }, rows: number) => {
    const values: unknown[] = [rows];
    const bind = (value: string) => `$${values.push(value)}`;
    return client.query(`SELECT ${transactionLockSql(key, bind)} FROM generate_series(1, $1::int)`, values);
  };
  const held = gate();
  const taken = gate();
  const noRows = inTransaction(pool, async (client) => {
    await lockIn(client, 0);
    taken.open();
    await held.opened;
  });
  await taken.opened;
  // Over no rows the call never ran: the lock is free while that transaction is open.
  expect(await withAdvisoryLockIfFree(pool, key, async () => 'free')).toEqual({ locked: true, value: 'free' });
  held.open();
  await noRows;

  const heldAgain = gate();
  const takenAgain = gate();
  const oneRow = inTransaction(pool, async (client) => {
    await lockIn(client, 1);
    takenAgain.open();
    await heldAgain.opened;
  });
  await takenAgain.opened;
  // The same key as lockForTransaction's and the session locks': they exclude each other.
  expect(await withAdvisoryLockIfFree(pool, key, async () => 'x')).toEqual({ locked: false });
  heldAgain.open();
  await oneRow;
  expect(await withAdvisoryLockIfFree(pool, key, async () => 'x')).toEqual({ locked: true, value: 'x' });
});
