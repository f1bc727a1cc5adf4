import { Pool, type PoolClient } from 'pg';
import { runner } from 'node-pg-migrate';
import type { Logger } from './logger';

export type { Pool, PoolClient } from 'pg';

const identifier = /^[a-z_][a-z0-9_]{0,62}$/;

function assertSchemaName(schema: string): void {
  if (!identifier.test(schema)) throw new Error(`"${schema}" is not a plain lower-case schema name`);
}

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
    max: options.max ?? 10,
    application_name: options.applicationName ?? options.schema,
    options: `-c search_path=${options.schema}`,
    connectionTimeoutMillis: 5_000,
    idleTimeoutMillis: 30_000,
  });
  pool.on('error', (error) => options.log.error({ err: error }, 'idle postgres client failed'));
  return pool;
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

/**
 * Applies the service's SQL migrations (`<dir>/*.sql`, node-pg-migrate's `-- Up Migration`
 * format) to its own schema, recording them in that schema's history table. A blocking
 * advisory lock per schema makes concurrent starts take turns: the first applies, the others
 * then find nothing to do.
 */
export async function migrate(options: { url: string; schema: string; dir: string; log: Logger }): Promise<string[]> {
  assertSchemaName(options.schema);
  const lockClient = new Pool({ connectionString: options.url, max: 1 });
  const client = await lockClient.connect();
  try {
    await client.query('SELECT pg_advisory_lock(hashtext($1))', [`calsync-migrations:${options.schema}`]);
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
    await client
      .query('SELECT pg_advisory_unlock(hashtext($1))', [`calsync-migrations:${options.schema}`])
      .catch(() => undefined);
    client.release();
    await lockClient.end();
  }
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
