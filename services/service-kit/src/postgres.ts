import { createHash } from 'node:crypto';
import { Client, Pool, Query, type PoolClient, type QueryConfig, type QueryResult, type QueryResultRow } from 'pg';
import { runner } from 'node-pg-migrate';
import { lockForSession } from './advisory-locks';
import type { Logger } from './logger';

export type { Pool, PoolClient, QueryConfig } from 'pg';

const identifier = /^[a-z_][a-z0-9_]{0,62}$/;

const statementNames = new Map<string, string>();
const maxStatementNames = 1_000;

/**
 * `text` as a named prepared statement: Postgres parses and plans it once per connection instead
 * of on every call, and node-postgres sends only the values after the first. For the fixed
 * statements of a hot path; the name comes from the text, so one text is always one statement.
 */
export function prepared(text: string, values: unknown[]): QueryConfig<unknown[]> {
  let name = statementNames.get(text);
  if (name === undefined) {
    name = `calsync_${createHash('sha256').update(text).digest('base64url').slice(0, 32)}`;
    // Texts are a fixed set; the bound only keeps a caller that builds them from data harmless.
    if (statementNames.size < maxStatementNames) statementNames.set(text, name);
  }
  return { name, text, values };
}

function assertSchemaName(schema: string): void {
  if (!identifier.test(schema)) throw new Error(`"${schema}" is not a plain lower-case schema name`);
}

/**
 * TCP keep-alive for every connection to Postgres: the first probe after 10 s of silence (libuv
 * then probes every second, 10 times). `keepAlive: true` alone leaves the OS's 2-hour idle time,
 * and a connection whose server vanished without a word (a failover, a dropped NAT or conntrack
 * entry) then looks alive for hours: a LISTEN hears nothing (the hook cache keeps trusting
 * entries it should have forgotten; the outbox relay waits for its timer), and a session lock
 * nobody can reach is held on to. With this, such a connection errors within about 20 s.
 */
const clientKeepAlive = { keepAlive: true, keepAliveInitialDelayMillis: 10_000 } as const;

/**
 * The same from Postgres' side, asked for by each connection at its start (any role may set
 * these for its own session): the server probes after 10 s of silence, 3 times 5 s apart, and
 * gives up on data the client has not acknowledged after 30 s. A backend whose client vanished
 * without a word (a node lost, a partition) then ends within about 30 s, and with it the session
 * advisory locks it held (the outbox relay's, an import run's, a reconcile pass's), which another
 * replica then takes up; with the server's defaults it would hold them for two hours or more, and
 * the change feed would wait that long for a relay.
 */
const serverKeepAliveOptions =
  '-c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5 -c tcp_keepalives_count=3 -c tcp_user_timeout=30000';

/** Both sides' keep-alive, for every connection to Postgres (a pool's, a dedicated one, a LISTEN). */
export const postgresKeepAlive = { ...clientKeepAlive, options: serverKeepAliveOptions } as const;

/** A pool whose every connection has its search_path bound to the service's own schema. */
export function createPool(options: {
  url: string;
  schema: string;
  max?: number;
  applicationName?: string;
  log: Logger;
}): Pool {
  assertSchemaName(options.schema);
  const pool = new Pool({
    connectionString: options.url,
    ...postgresKeepAlive,
    max: options.max ?? 10,
    application_name: options.applicationName ?? options.schema,
    options: `${postgresKeepAlive.options} -c search_path=${options.schema}`,
    connectionTimeoutMillis: 5_000,
    idleTimeoutMillis: 30_000,
  });
  pool.on('error', (error) => {
    // pg-pool hands the error over with its connection attached (err.client): logged with it, one
    // lost connection wrote every statement it had prepared and its settings, tens of kilobytes
    // a line, for each pooled connection of every replica when Postgres restarts.
    delete (error as Error & { client?: unknown }).client;
    options.log.warn({ err: error }, 'idle postgres connection lost');
  });
  // pg-pool listens for errors only while a connection sits idle: one checked out (inTransaction,
  // a held advisory lock) that loses its server would emit 'error' to nobody and crash the
  // process. The work on it fails by itself; the pool discards the connection when released.
  pool.on('connect', (client) => {
    client.on('error', (error) => options.log.warn({ err: error }, 'postgres connection lost'));
  });
  return pool;
}

/**
 * A connection of its own, outside any pool (a LISTEN, a session advisory lock), connected and
 * with an error listener, so losing the server ends it (its 'end' event) instead of the process.
 */
export async function connectDedicated(options: {
  url: string;
  applicationName: string;
  log: Logger;
}): Promise<Client> {
  const client = new Client({
    connectionString: options.url,
    application_name: options.applicationName,
    ...postgresKeepAlive,
  });
  client.on('error', (error) =>
    options.log.warn({ err: error, connection: options.applicationName }, 'postgres connection lost'),
  );
  try {
    await client.connect();
  } catch (error) {
    await client.end().catch(() => undefined);
    throw error;
  }
  return client;
}

/** Runs `work` in a transaction on one client: commit when it resolves, roll back when it throws. */
export async function inTransaction<T>(pool: Pool, work: (client: PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    client.release();
  }
}

/** What runs statements: a pooled client, or a transaction of inTransactionWithFewerRoundTrips. */
export interface Queryable {
  query<R extends QueryResultRow = QueryResultRow>(config: QueryConfig<unknown[]>): Promise<QueryResult<R>>;
  query<R extends QueryResultRow = QueryResultRow>(text: string, values?: unknown[]): Promise<QueryResult<R>>;
}

/** A transaction whose BEGIN rides with its first statement and whose COMMIT can ride with its last. */
export interface Transaction extends Queryable {
  /**
   * Runs the transaction's last statement with the COMMIT behind it, in one round trip; nothing
   * may run after it. Should the statement fail, Postgres skips the COMMIT and the transaction
   * rolls back.
   */
  commitWith<R extends QueryResultRow = QueryResultRow>(config: QueryConfig<unknown[]>): Promise<QueryResult<R>>;
  /**
   * Runs the statements one after another in one round trip and answers each one's result, in
   * order. Each still runs on its own, with a snapshot taken when the one before it has finished
   * (after any lock it waited for), exactly as if each were sent once the one before answered;
   * when one fails, Postgres skips the rest and the transaction rolls back. A statement after the
   * first that is named and not yet parsed on this connection makes them run one at a time, in a
   * round trip each, that once.
   */
  queryTogether(configs: readonly QueryConfig<unknown[]>[]): Promise<QueryResult[]>;
}

// The parts of node-postgres' Query (a Submittable, its documented extension point) and of its
// connection that StatementsInOneRoundTrip builds on.
interface ExtendedProtocolConnection {
  parse(message: { text: string }): void;
  bind(message: object): void;
  execute(message: object): void;
  sync(): void;
}
const queryPrepare = (Query.prototype as unknown as { prepare(connection: ExtendedProtocolConnection): void }).prepare;

/**
 * A statement sent after another one, before their Sync: Query.prepare sends its Bind and Describe
 * (and a Parse only when it is unnamed: a named one follows only once parsed, see statementsRunOn)
 * and ends in _getRows, here only its Execute.
 */
class FollowingStatement extends Query {
  _getRows(connection: ExtendedProtocolConnection): void {
    connection.execute({});
  }
}

/**
 * Statements sent with one Sync: plain ones (BEGIN, COMMIT) before and after, and between them the
 * statement this Query is for and the ones following it. Postgres runs them in order and answers
 * them together, so they cost one round trip (one write each way, one wake-up of each side)
 * instead of one each. When one fails, Postgres skips the rest up to the Sync. Its results are
 * those of the statement and its followers, in order.
 */
class StatementsInOneRoundTrip extends Query {
  constructor(
    config: QueryConfig<unknown[]>,
    private readonly following: readonly QueryConfig<unknown[]>[],
    private readonly before: readonly string[],
    private readonly after: readonly string[],
    done: (error: Error | null, results?: QueryResult[]) => void,
  ) {
    // The extended protocol always, even for a statement without values: only it can carry
    // several statements to one Sync. The results come as one per statement, BEGIN's first.
    super({
      ...config,
      queryMode: 'extended',
      callback: (error: Error | null, results?: QueryResult | QueryResult[]) => {
        if (error) return done(error);
        const all = Array.isArray(results) ? results : [results!];
        done(null, all.slice(before.length, before.length + 1 + following.length));
      },
    } as QueryConfig<unknown[]>);
  }

  private static plain(connection: ExtendedProtocolConnection, text: string): void {
    // The unnamed statement and portal, and no Describe: a statement without rows needs none.
    connection.parse({ text });
    connection.bind({});
    connection.execute({});
  }

  prepare(connection: ExtendedProtocolConnection): void {
    for (const text of this.before) StatementsInOneRoundTrip.plain(connection, text);
    queryPrepare.call(this, connection);
  }

  // Query.prepare ends here, after the statement's Bind and Describe.
  _getRows(connection: ExtendedProtocolConnection): void {
    connection.execute({});
    for (const config of this.following) {
      let failed: Error | undefined;
      const statement = new FollowingStatement({
        ...config,
        queryMode: 'extended',
        callback: (error: Error | null) => {
          failed = error ?? undefined;
        },
      } as QueryConfig<unknown[]>);
      queryPrepare.call(statement, connection);
      // Its values could not be sent (Query.prepare then sent the Sync): the whole round trip
      // fails with that error once Postgres answers what came before it.
      if (failed) {
        (this as unknown as { _canceledDueToError: Error })._canceledDueToError = failed;
        return;
      }
    }
    for (const text of this.after) StatementsInOneRoundTrip.plain(connection, text);
    connection.sync();
  }
}

function runStatements(
  client: PoolClient,
  [config, ...following]: readonly QueryConfig<unknown[]>[],
  before: readonly string[],
  after: readonly string[],
): Promise<QueryResult[]> {
  return new Promise((resolve, reject) => {
    void client.query(
      new StatementsInOneRoundTrip(config!, following, before, after, (error, results) =>
        error ? reject(error) : resolve(results!),
      ),
    );
  });
}

// Per connection, the named statements it has run. One not parsed there yet never rides behind
// another statement (a BEGIN or one it follows): node-postgres counts every ParseComplete as the
// query's own, and would take a statement that then failed to parse for parsed (or, following,
// not know it was parsed). Behind it, a COMMIT's parse comes after the statement's, so commitWith
// needs no such care.
const statementsRunOn = new WeakMap<PoolClient, Set<string>>();

/**
 * inTransaction for a hot path: BEGIN travels with the first statement and, when `work` ends
 * with tx.commitWith, COMMIT with the last, so a transaction of n statements costs n round trips
 * instead of n + 2 (fewer still with tx.queryTogether). On a machine where each round trip costs
 * the wake-up of both sides, that is CPU in Postgres and here, and time held under the
 * transaction's locks. Rolls back when `work` throws; a transaction that ran no statement sends
 * nothing.
 */
export async function inTransactionWithFewerRoundTrips<T>(
  pool: Pool,
  work: (tx: Transaction) => Promise<T>,
): Promise<T> {
  const client = await pool.connect();
  let state = 'idle' as 'idle' | 'open' | 'committed';
  let ran = statementsRunOn.get(client);
  if (!ran) statementsRunOn.set(client, (ran = new Set()));
  const known = ran;
  const unparsed = (config: QueryConfig<unknown[]>) => config.name !== undefined && !known.has(config.name);
  const run = async (configs: readonly QueryConfig<unknown[]>[], commit: boolean): Promise<QueryResult[]> => {
    if (state === 'committed') throw new Error('the transaction was committed: nothing may run after commitWith');
    if (configs.length === 0) return [];
    if (configs.slice(1).some(unparsed)) {
      const results: QueryResult[] = [];
      for (const [i, config] of configs.entries())
        results.push(...(await run([config], commit && i === configs.length - 1)));
      return results;
    }
    let before: string[] = [];
    if (state === 'idle') {
      if (unparsed(configs[0]!)) await client.query('BEGIN');
      else before = ['BEGIN'];
      state = 'open';
    }
    const results = await runStatements(client, configs, before, commit ? ['COMMIT'] : []);
    for (const config of configs) if (config.name) known.add(config.name);
    if (commit) state = 'committed';
    return results;
  };
  const runOne = async <R extends QueryResultRow>(config: QueryConfig<unknown[]>, commit: boolean) =>
    (await run([config], commit))[0] as QueryResult<R>;
  const tx: Transaction = {
    query: (<R extends QueryResultRow>(config: QueryConfig<unknown[]> | string, values?: unknown[]) =>
      runOne<R>(typeof config === 'string' ? { text: config, values } : config, false)) as Transaction['query'],
    commitWith: (config) => runOne(config, true),
    queryTogether: (configs) => run(configs, false),
  };
  try {
    const result = await work(tx);
    if (state === 'open') await client.query('COMMIT');
    state = 'committed';
    return result;
  } catch (error) {
    // Also after a failed commitWith: its COMMIT was skipped (or failed, and rolled back).
    if (state !== 'idle') await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    client.release();
  }
}

/**
 * A service's migrator: applies the migrations in `dir` to the schema its config names. Each
 * service exports one (`migrateSchema` in its `src/migrations.ts`) for its start, its
 * MIGRATE_ONLY run and its commands.
 */
export function schemaMigrator(
  dir: string,
): (config: { DATABASE_URL: string; DATABASE_SCHEMA: string }, log: Logger) => Promise<string[]> {
  return (config, log) => migrate({ url: config.DATABASE_URL, schema: config.DATABASE_SCHEMA, dir, log });
}

/**
 * Applies the service's SQL migrations (`<dir>/*.sql`, node-pg-migrate's `-- Up Migration`
 * format) to its own schema, recording them in that schema's history table. A blocking
 * advisory lock per schema makes concurrent starts take turns: the first applies, the others
 * then find nothing to do.
 */
export async function migrate(options: { url: string; schema: string; dir: string; log: Logger }): Promise<string[]> {
  assertSchemaName(options.schema);
  const client = await connectDedicated({
    url: options.url,
    applicationName: `${options.schema}-migrations`,
    log: options.log,
  });
  try {
    await lockForSession(client, { namespace: 'calsync.migrations', name: options.schema });
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${options.schema}`);
    const applied = await runner({
      databaseUrl: options.url,
      dir: options.dir,
      direction: 'up',
      count: Infinity,
      schema: options.schema,
      migrationsSchema: options.schema,
      migrationsTable: 'schema_migrations',
      checkOrder: true,
      singleTransaction: true,
      noLock: true,
      log: () => undefined,
      logger: {
        debug: () => undefined,
        info: () => undefined,
        warn: (message: string) => options.log.warn({ schema: options.schema }, message),
        // Our files are numbered 0001_, 0002_...: node-pg-migrate orders them by that number but
        // reports each as a timestamp it cannot read, which is noise, not an error.
        error: (message: string) =>
          /^Can't determine timestamp for \d+$/.test(message)
            ? undefined
            : options.log.error({ schema: options.schema }, message),
      },
    });
    const names = applied.map((migration) => migration.name);
    if (names.length > 0) options.log.info({ schema: options.schema, applied: names }, 'migrations applied');
    return names;
  } finally {
    // Ending the session releases the lock.
    await client.end().catch(() => undefined);
  }
}

// SQLSTATE classes and codes that mean "the database is not there right now", not "this query is wrong":
// connection exceptions, admin/crash shutdown, cannot connect now, too many connections.
const unavailableStates = /^(08...|57P0[123]|53300)$/;
const unavailableMessages =
  /Connection terminated|connection error and is not queryable|timeout exceeded when trying to connect/;
const unavailableSocketErrors = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH']);

/** True when `error` says Postgres could not be reached or dropped the connection: worth retrying later. */
export function isDatabaseUnavailable(error: unknown): boolean {
  // Shapes, not classes: socket errors come from node's own realm, not always this one's Error.
  if (typeof error !== 'object' || error === null) return false;
  const { code, message, errors } = error as { code?: unknown; message?: unknown; errors?: unknown };
  if (typeof code === 'string' && (unavailableStates.test(code) || unavailableSocketErrors.has(code))) return true;
  if (Array.isArray(errors) && errors.some(isDatabaseUnavailable)) return true;
  return typeof message === 'string' && unavailableMessages.test(message);
}

/** True when Postgres answers a trivial query. */
export async function pingPostgres(pool: Pool): Promise<boolean> {
  try {
    await pool.query('SELECT 1');
    return true;
  } catch {
    return false;
  }
}
