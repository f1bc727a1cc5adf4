import { randomBytes } from 'node:crypto';
import { createPool, type Pool } from './postgres';
import { resealAll, type SealedTable } from './reseal';
import { createSealer } from './sealing';
import { captureLogger } from './testing/log-capture';
import { rotationSealers } from './testing/sealing';
import { createTestDatabase, type TestDatabase } from './testing/infra';

const { log, lines } = captureLogger('reseal-test', 'info');
const { before, after } = rotationSealers();
const stranger = createSealer({ keys: new Map([['gone', randomBytes(32)]]), activeKeyId: 'gone' });

// Two sealed columns bound to the row's owner, one table keyed by something else than the owner.
const tables: SealedTable[] = [
  {
    table: 'secrets',
    key: 'id',
    contextColumns: ['owner'],
    columns: [
      { column: 'a_sealed', context: (row) => `a/${row.owner}` },
      { column: 'b_sealed', context: (row) => `b/${row.owner}` },
    ],
  },
  { table: 'pending', key: 'id', columns: [{ column: 'v_sealed', context: (row) => `v/${row.id}` }] },
];

let database: TestDatabase;
let pool: Pool;

beforeAll(async () => {
  database = await createTestDatabase('kit_reseal');
  pool = createPool({ url: database.url, schema: 'public', log });
  await pool.query('CREATE TABLE secrets (id text PRIMARY KEY, owner text NOT NULL, a_sealed text, b_sealed text)');
  await pool.query('CREATE TABLE pending (id text PRIMARY KEY, v_sealed text NOT NULL)');
});

afterAll(async () => {
  await pool?.end();
  await database?.drop();
});

const plain = (n: number, column: string) => `secret-${column}-${n}`;

it('re-seals every value under the active key in batches and passes until one finds nothing, keeping each binding', async () => {
  for (let n = 0; n < 7; n++) {
    await pool.query('INSERT INTO secrets VALUES ($1, $2, $3, $4)', [
      `s${n}`,
      `owner${n}`,
      before.seal(plain(n, 'a'), `a/owner${n}`),
      // A row may already be half rotated, or hold no value in a column.
      n === 0 ? null : n % 2 ? after.seal(plain(n, 'b'), `b/owner${n}`) : before.seal(plain(n, 'b'), `b/owner${n}`),
    ]);
    await pool.query('INSERT INTO pending VALUES ($1, $2)', [`p${n}`, before.seal(plain(n, 'v'), `v/p${n}`)]);
  }

  const report = await resealAll({ pool, sealer: after, log, tables, batchSize: 3 });

  expect(report).toEqual({ resealed: { secrets: 7, pending: 7 }, unreadable: 0, passes: 2, settled: true });
  const { rows } = await pool.query<{ id: string; owner: string; a_sealed: string; b_sealed: string | null }>(
    'SELECT * FROM secrets ORDER BY id',
  );
  for (const [n, row] of rows.entries()) {
    expect(after.keyIdOf(row.a_sealed)).toBe('new');
    expect(after.open(row.a_sealed, `a/${row.owner}`)).toBe(plain(n, 'a'));
    if (n === 0) expect(row.b_sealed).toBeNull();
    else expect(after.open(row.b_sealed!, `b/${row.owner}`)).toBe(plain(n, 'b'));
  }
  const pending = await pool.query<{ id: string; v_sealed: string }>('SELECT * FROM pending ORDER BY id');
  for (const [n, row] of pending.rows.entries()) expect(after.open(row.v_sealed, `v/${row.id}`)).toBe(plain(n, 'v'));
  expect(lines.filter((line) => line.includes('reseal pass done'))).toHaveLength(2);
});

it('leaves a value no configured key opens as it is, counts it, and does not settle on it forever', async () => {
  const foreign = stranger.seal('forgotten-secret', 'v/p-lost');
  await pool.query('INSERT INTO pending VALUES ($1, $2)', ['p-lost', foreign]);

  const report = await resealAll({ pool, sealer: after, log, tables, batchSize: 3, maxPasses: 3 });

  expect(report).toMatchObject({ resealed: { secrets: 0, pending: 0 }, unreadable: 1, settled: true });
  expect((await pool.query('SELECT v_sealed FROM pending WHERE id = $1', ['p-lost'])).rows[0].v_sealed).toBe(foreign);
  expect(lines.some((line) => line.includes('sealed value cannot be opened') && line.includes('p-lost'))).toBe(true);
  expect(lines.some((line) => line.includes('forgotten-secret'))).toBe(false);
});

it('refuses a table or column name that is not a plain identifier', async () => {
  await expect(
    resealAll({
      pool,
      sealer: after,
      log,
      batchSize: 3,
      tables: [{ table: 'pending; DROP TABLE secrets', key: 'id', columns: [] }],
    }),
  ).rejects.toThrow('not a plain SQL identifier');
});
