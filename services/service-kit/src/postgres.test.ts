import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Client, type PoolClient } from 'pg';
import {
  connectDedicated,
  createPool,
  inTransaction,
  inTransactionWithFewerRoundTrips,
  migrate,
  prepared,
  type Pool,
} from './postgres';
import { captureLogger } from './testing/log-capture';
import { createTestDatabase, type TestDatabase } from './testing/infra';
import { waitFor } from './testing/polling';

const run = promisify(execFile);
let database: TestDatabase;
let dir: string;

beforeAll(async () => {
  database = await createTestDatabase('kit_pg');
  dir = mkdtempSync(join(tmpdir(), 'migrations-'));
  // pg_sleep widens the window in which two starts would race without the lock.
  writeFileSync(
    join(dir, '0001_create_things.sql'),
    '-- Up Migration\nSELECT pg_sleep(0.5);\nCREATE TABLE things (id int PRIMARY KEY);\nINSERT INTO things VALUES (1);\n',
  );
  writeFileSync(join(dir, '0002_more_things.sql'), '-- Up Migration\nINSERT INTO things VALUES (2);\n');
});

afterAll(async () => {
  await database.drop();
});

async function query<T>(sql: string): Promise<T[]> {
  const client = new Client({ connectionString: database.url });
  await client.connect();
  try {
    return (await client.query(sql)).rows as T[];
  } finally {
    await client.end();
  }
}

describe('migrate', () => {
  it('applies migrations exactly once when two processes start together', async () => {
    const kit = join(__dirname, '..', 'dist', 'index.js');
    const script = `
      const kit = require(${JSON.stringify(kit)});
      const log = kit.createLogger({ service: 'migrate-test', level: 'silent' });
      kit.migrate({ url: process.argv[1], schema: 'racers', dir: process.argv[2], log })
        .then((applied) => console.log(JSON.stringify(applied)))
        .catch((error) => { console.error(error); process.exit(1); });`;
    const results = await Promise.all(
      [1, 2].map(() => run(process.execPath, ['-e', script, database.url, dir], { timeout: 30_000 })),
    );
    const applied = results.map((result) => JSON.parse(result.stdout) as string[]);
    expect(applied.flat().sort()).toEqual(['0001_create_things', '0002_more_things']);
    expect(applied.some((names) => names.length === 0)).toBe(true);
    expect(await query('SELECT id FROM racers.things ORDER BY id')).toEqual([{ id: 1 }, { id: 2 }]);
    expect(await query('SELECT name FROM racers.schema_migrations ORDER BY id')).toEqual([
      { name: '0001_create_things' },
      { name: '0002_more_things' },
    ]);
  });

  it('keeps each service in its own schema with its own history', async () => {
    const { log } = captureLogger();
    await migrate({ url: database.url, schema: 'other_service', dir, log });
    expect(await query('SELECT count(*)::int AS n FROM other_service.schema_migrations')).toEqual([{ n: 2 }]);
    const pool = createPool({ url: database.url, schema: 'other_service', log });
    try {
      const { rows } = await pool.query('SELECT count(*)::int AS n FROM things');
      expect(rows).toEqual([{ n: 2 }]);
    } finally {
      await pool.end();
    }
  });

  it('refuses a schema name that is not a plain identifier', async () => {
    const { log } = captureLogger();
    await expect(migrate({ url: database.url, schema: 'x; DROP TABLE y', dir, log })).rejects.toThrow(/schema name/);
  });
});

describe('inTransaction', () => {
  it('rolls back everything when the work throws', async () => {
    const { log } = captureLogger();
    const pool = createPool({ url: database.url, schema: 'racers', log });
    try {
      await expect(
        inTransaction(pool, async (client) => {
          await client.query('INSERT INTO things VALUES (3)');
          throw new Error('boom');
        }),
      ).rejects.toThrow('boom');
      const { rows } = await pool.query('SELECT count(*)::int AS n FROM things WHERE id = 3');
      expect(rows).toEqual([{ n: 0 }]);
    } finally {
      await pool.end();
    }
  });
});

describe('inTransactionWithFewerRoundTrips', () => {
  let pool: Pool;
  // Round trips on the pool's one connection: each ends with the server's ReadyForQuery.
  let roundTrips = 0;
  const readTable = async () =>
    (await pool.query<{ id: number; note: string }>('SELECT id, note FROM ledger ORDER BY id')).rows;
  const insert = (id: number, note: string) =>
    prepared('INSERT INTO ledger (id, note) VALUES ($1, $2) RETURNING id, note, txid_current()::text AS tx', [
      id,
      note,
    ]);

  beforeAll(async () => {
    pool = createPool({ url: database.url, schema: 'public', max: 1, log: captureLogger().log });
    pool.on('connect', (client) => {
      (client as unknown as { connection: NodeJS.EventEmitter }).connection.on('readyForQuery', () => roundTrips++);
    });
    await pool.query('CREATE TABLE ledger (id int PRIMARY KEY, note text NOT NULL)');
  });
  beforeEach(async () => {
    await pool.query('TRUNCATE ledger');
    roundTrips = 0;
  });
  afterAll(async () => {
    await pool.end();
  });

  it('sends BEGIN with the first statement and COMMIT with the last, once the statement is known', async () => {
    // The first use on a connection parses the statement in a round trip of its own.
    await inTransactionWithFewerRoundTrips(pool, async (tx) => tx.commitWith(insert(1, 'one')));
    roundTrips = 0;
    const results = await inTransactionWithFewerRoundTrips(pool, async (tx) => {
      const first = await tx.query<{ id: number; note: string; tx: string }>(insert(2, 'two'));
      const last = await tx.commitWith<{ id: number; note: string; tx: string }>(insert(3, 'three'));
      return [first.rows, last.rows];
    });
    expect(roundTrips).toBe(2);
    // Each answers its own statement's rows, both from one transaction.
    expect(results[0]).toEqual([{ id: 2, note: 'two', tx: expect.any(String) }]);
    expect(results[1]).toEqual([{ id: 3, note: 'three', tx: results[0][0].tx }]);
    expect(await readTable()).toEqual([
      { id: 1, note: 'one' },
      { id: 2, note: 'two' },
      { id: 3, note: 'three' },
    ]);
  });

  it('commits by itself when the work ends without commitWith, and sends nothing for no statement', async () => {
    await inTransactionWithFewerRoundTrips(pool, async (tx) => {
      await tx.query('INSERT INTO ledger (id, note) VALUES ($1, $2)', [1, 'one']);
    });
    expect(await readTable()).toEqual([{ id: 1, note: 'one' }]);
    roundTrips = 0;
    expect(await inTransactionWithFewerRoundTrips(pool, async () => 'nothing')).toBe('nothing');
    expect(roundTrips).toBe(0);
  });

  it('rolls back everything when the last statement fails, and Postgres skips its COMMIT', async () => {
    await inTransactionWithFewerRoundTrips(pool, async (tx) => tx.commitWith(insert(1, 'one')));
    await expect(
      inTransactionWithFewerRoundTrips(pool, async (tx) => {
        await tx.query(insert(2, 'two'));
        // A duplicate key: the statement fails, so the COMMIT behind it never runs.
        await tx.commitWith(insert(1, 'again'));
      }),
    ).rejects.toMatchObject({ code: '23505' });
    expect(await readTable()).toEqual([{ id: 1, note: 'one' }]);
    // The connection is out of the failed transaction: the next one on it commits.
    await inTransactionWithFewerRoundTrips(pool, async (tx) => tx.commitWith(insert(4, 'four')));
    expect(await readTable()).toEqual([
      { id: 1, note: 'one' },
      { id: 4, note: 'four' },
    ]);
  });

  it('rolls back when the first statement fails or the work throws, and refuses a statement after the commit', async () => {
    await expect(
      inTransactionWithFewerRoundTrips(pool, async (tx) => {
        await tx.query(prepared('SELECT 1 / $1::int', [0]));
      }),
    ).rejects.toMatchObject({ code: '22012' });
    await expect(
      inTransactionWithFewerRoundTrips(pool, async (tx) => {
        await tx.query(insert(5, 'five'));
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    await expect(
      inTransactionWithFewerRoundTrips(pool, async (tx) => {
        await tx.commitWith(insert(6, 'six'));
        await tx.query(insert(7, 'seven'));
      }),
    ).rejects.toThrow('nothing may run after commitWith');
    expect(await readTable()).toEqual([{ id: 6, note: 'six' }]);
  });

  it('runs statements together in one round trip once they are known, each answering its own result', async () => {
    const count = prepared('SELECT count(*)::int AS n, txid_current()::text AS tx FROM ledger', []);
    const together = (id: number) =>
      inTransactionWithFewerRoundTrips(pool, async (tx) => tx.queryTogether([insert(id, `note ${id}`), count]));
    // The first use on a connection: the statement that follows is parsed in a round trip of its own.
    const first = await together(1);
    roundTrips = 0;
    const [inserted, counted] = await together(2);
    // BEGIN, both statements and (the work ending) COMMIT: one round trip, and one for the COMMIT.
    expect(roundTrips).toBe(2);
    expect(inserted!.rows).toEqual([{ id: 2, note: 'note 2', tx: expect.any(String) }]);
    // The second statement ran after the first, in the same transaction: it sees its row.
    expect(counted!.rows).toEqual([{ n: 2, tx: inserted!.rows[0].tx }]);
    expect(first.map((result) => result.rows.length)).toEqual([1, 1]);
    expect(await readTable()).toEqual([
      { id: 1, note: 'note 1' },
      { id: 2, note: 'note 2' },
    ]);
  });

  it('gives each statement run together a snapshot taken after the one before it finished', async () => {
    const lock = prepared('SELECT pg_advisory_xact_lock($1::bigint)', [42]);
    const count = prepared('SELECT count(*)::int AS n FROM ledger', []);
    // Known on the pool's connection first, so that they travel together below.
    await inTransactionWithFewerRoundTrips(pool, async (tx) => tx.queryTogether([lock, count]));
    const holder = new Client({ connectionString: database.url });
    await holder.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('SELECT pg_advisory_xact_lock(42)');
      await holder.query(`INSERT INTO ledger (id, note) VALUES (1, 'held')`);
      const waiting = inTransactionWithFewerRoundTrips(pool, async (tx) => tx.queryTogether([lock, count]));
      // Commit only once the pool's transaction waits for the lock.
      await waitFor(
        async () => {
          const { rows } = await holder.query<{ n: number }>(
            `SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted`,
          );
          return rows[0]!.n === 1;
        },
        { what: 'the transaction to wait for the lock' },
      );
      await holder.query('COMMIT');
      const [, counted] = await waiting;
      // Taken after the lock was granted, so after the holder's commit.
      expect(counted!.rows).toEqual([{ n: 1 }]);
    } finally {
      await holder.end();
    }
  });

  it('skips the statements after one that fails and rolls the transaction back', async () => {
    const again = (id: number) => [insert(id, 'first'), insert(id + 1, 'second')];
    await inTransactionWithFewerRoundTrips(pool, async (tx) => tx.queryTogether(again(1)));
    await expect(
      inTransactionWithFewerRoundTrips(pool, async (tx) => {
        await tx.query(insert(10, 'ten'));
        // The first is a duplicate key: the second, behind it, never runs.
        await tx.queryTogether(again(1));
      }),
    ).rejects.toMatchObject({ code: '23505' });
    expect(await readTable()).toEqual([
      { id: 1, note: 'first' },
      { id: 2, note: 'second' },
    ]);
    // A statement that fails behind another: the first's row goes with the transaction.
    await expect(
      inTransactionWithFewerRoundTrips(pool, async (tx) => tx.queryTogether([insert(5, 'five'), insert(2, 'dup')])),
    ).rejects.toMatchObject({ code: '23505' });
    expect((await readTable()).map((row) => row.id)).toEqual([1, 2]);
    // The connection goes on.
    const [, counted] = await inTransactionWithFewerRoundTrips(pool, async (tx) =>
      tx.queryTogether([insert(3, 'three'), prepared('SELECT count(*)::int AS n FROM ledger', [])]),
    );
    expect(counted!.rows).toEqual([{ n: 3 }]);
  });

  it('keeps a statement that failed to parse unknown to the connection', async () => {
    const broken = prepared('SELEC $1::int', [1]);
    for (let attempt = 0; attempt < 2; attempt++)
      await expect(inTransactionWithFewerRoundTrips(pool, async (tx) => tx.query(broken))).rejects.toMatchObject({
        code: '42601',
      });
    // The connection goes on, and parses a good statement as before.
    const { rows } = await inTransactionWithFewerRoundTrips(pool, async (tx) =>
      tx.commitWith(prepared('SELECT $1::int + 1 AS n', [1])),
    );
    expect(rows).toEqual([{ n: 2 }]);
  });
});

describe('a terminated connection', () => {
  // A child process, so that an unhandled 'error' event shows as the crash it is in a service.
  const survive = (body: string) => {
    const kit = join(__dirname, '..', 'dist', 'index.js');
    const script = `
      const kit = require(${JSON.stringify(kit)});
      const log = kit.createLogger({ service: 'terminate-test', level: 'silent' });
      const url = process.argv[1];
      const pool = kit.createPool({ url, schema: 'public', log });
      const terminate = async (pid) => {
        const admin = new (require('pg').Client)({ connectionString: url });
        await admin.connect();
        await admin.query('SELECT pg_terminate_backend($1)', [pid]);
        await admin.end();
      };
      const pidOf = async (client) => (await client.query('SELECT pg_backend_pid() AS pid')).rows[0].pid;
      (async () => { ${body} })().then(
        async (outcome) => { console.log(JSON.stringify(outcome)); await pool.end(); },
        (error) => { console.error(error); process.exit(1); });`;
    return run(process.execPath, ['-e', script, database.url], { timeout: 30_000 }).then(
      (result) => JSON.parse(result.stdout) as unknown,
    );
  };

  it('fails the transaction that held it, without crashing the process, and the pool goes on', async () => {
    const outcome = await survive(`
      const failed = await kit.inTransaction(pool, async (client) => {
        const ended = new Promise((resolve) => client.once('end', resolve));
        await terminate(await pidOf(client));
        // Idle between two queries while the server goes away: nothing is listening but us.
        await ended;
        await client.query('SELECT 1');
      }).then(() => 'committed', (error) => 'failed');
      const after = (await pool.query('SELECT 1 AS one')).rows;
      return { failed, after };`);
    expect(outcome).toEqual({ failed: 'failed', after: [{ one: 1 }] });
  });

  it('logs an idle connection it lost as a short line: the error, not the connection', async () => {
    const { log, lines } = captureLogger('terminate-test', 'warn');
    const pool = createPool({ url: database.url, schema: 'public', log });
    try {
      const client = await pool.connect();
      const pid = (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
      // A prepared statement, which the lost connection would otherwise have written out.
      await client.query(prepared('SELECT $1::text AS marker_statement_text', ['x']));
      client.release();
      await query(`SELECT pg_terminate_backend(${pid})`);
      await waitFor(() => lines.some((line) => line.includes('idle postgres connection lost')), {
        what: 'the lost connection logged',
      });
    } finally {
      await pool.end();
    }
    const line = lines.find((candidate) => candidate.includes('idle postgres connection lost'))!;
    expect(JSON.parse(line).err).toMatchObject({ code: '57P01' });
    expect(line).not.toContain('marker_statement_text');
    expect(line.length).toBeLessThan(2_000);
  });

  it('lets a dedicated connection end without crashing the process', async () => {
    const outcome = await survive(`
      const client = await kit.connectDedicated({ url, applicationName: 'dedicated-test', log });
      const ended = new Promise((resolve) => client.once('end', resolve));
      await terminate(await pidOf(client));
      await ended;
      return { ended: true, queryable: await client.query('SELECT 1').then(() => true, () => false) };`);
    expect(outcome).toEqual({ ended: true, queryable: false });
  });
});

describe('keep-alive', () => {
  /**
   * Seconds until the kernel's keep-alive probe of this connection's socket, from /proc/net/tcp
   * (timer 02 is keep-alive; its expiry is in clock ticks of 1/100 s); null when none is armed.
   */
  const keepAliveSecondsOf = (client: Client | PoolClient, side: 'client' | 'server' = 'client'): number | null => {
    const stream = (client as unknown as { connection: { stream: { localPort: number; remotePort: number } } })
      .connection.stream;
    const hex = (port: number) => port.toString(16).toUpperCase().padStart(4, '0');
    // The server's socket of this connection has the ports the other way round.
    const [local, remote] =
      side === 'client' ? [stream.localPort, stream.remotePort] : [stream.remotePort, stream.localPort];
    const socket = ['/proc/net/tcp', '/proc/net/tcp6']
      .flatMap((table) => readFileSync(table, 'utf8').split('\n'))
      .map((line) => line.trim().split(/\s+/))
      .find((fields) => fields[1]?.endsWith(`:${hex(local)}`) && fields[2]?.endsWith(`:${hex(remote)}`));
    const [timer, expiresIn] = (socket?.[5] ?? '').split(':');
    return timer === '02' ? parseInt(expiresIn!, 16) / 100 : null;
  };

  /** Runs `check` with a pooled connection and a dedicated one, each as the kit makes it. */
  const withPooledAndDedicated = async (check: (pooled: PoolClient, dedicated: Client) => Promise<void>) => {
    const { log } = captureLogger();
    const pool = createPool({ url: database.url, schema: 'public', log });
    const dedicated = await connectDedicated({ url: database.url, applicationName: 'keepalive-test', log });
    const pooled = await pool.connect();
    try {
      await check(pooled, dedicated);
    } finally {
      pooled.release();
      await dedicated.end();
      await pool.end();
    }
  };

  it('probes a silent connection after seconds, not the OS default of two hours, pooled or dedicated', async () => {
    await withPooledAndDedicated(async (pooled, dedicated) => {
      for (const client of [pooled, dedicated]) {
        const seconds = keepAliveSecondsOf(client);
        expect(seconds).not.toBeNull();
        expect(seconds!).toBeLessThanOrEqual(10);
      }
    });
  });

  it("has Postgres probe its side too, so a vanished client's session (and its locks) ends in about 30 s", async () => {
    await withPooledAndDedicated(async (pooled, dedicated) => {
      for (const client of [pooled, dedicated]) {
        const { rows } = await client.query<{ idle: string; interval: string; count: string; user_timeout: string }>(
          `SELECT current_setting('tcp_keepalives_idle') AS idle, current_setting('tcp_keepalives_interval') AS interval,
                  current_setting('tcp_keepalives_count') AS count, current_setting('tcp_user_timeout') AS user_timeout`,
        );
        expect(rows).toEqual([{ idle: '10', interval: '5', count: '3', user_timeout: '30000' }]);
        // Armed by the server's kernel on its socket, not only recorded (the database runs here),
        // once the answer above is acknowledged (until then its retransmission timer runs).
        const seconds = await waitFor(() => keepAliveSecondsOf(client, 'server') ?? undefined, {
          what: "the server's keep-alive timer",
        });
        expect(seconds).toBeLessThanOrEqual(10);
      }
      // The pool's own search_path still travels beside them.
      expect((await pooled.query<{ path: string }>("SELECT current_setting('search_path') AS path")).rows).toEqual([
        { path: 'public' },
      ]);
    });
  });
});

describe('prepared', () => {
  it('names one text one statement, which each connection parses once and reuses', async () => {
    const { log } = captureLogger();
    const pool = createPool({ url: database.url, schema: 'public', max: 1, log });
    try {
      const text = 'SELECT $1::int + 1 AS n';
      const first = prepared(text, [1]);
      expect(prepared(text, [2]).name).toBe(first.name);
      expect(prepared('SELECT $1::int + 2 AS n', [1]).name).not.toBe(first.name);
      for (const value of [1, 2, 3])
        expect((await pool.query(prepared(text, [value]))).rows).toEqual([{ n: value + 1 }]);
      const { rows } = await pool.query<{ statements: number }>(
        'SELECT count(*)::int AS statements FROM pg_prepared_statements WHERE name = $1',
        [first.name],
      );
      expect(rows).toEqual([{ statements: 1 }]);
    } finally {
      await pool.end();
    }
  });
});
