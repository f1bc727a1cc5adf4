import type { Pool, PoolClient } from 'pg';

/**
 * Names a Postgres advisory lock. Every calsync lock uses the two-key form
 * `(hashtext(namespace), hashtext(name))`, so locks of different purposes never share a key
 * (a hash collision within one namespace only makes two names take turns).
 */
export interface LockKey {
  /** What the lock guards, e.g. `subscription.user`. */
  namespace: string;
  /** Which one, e.g. the user id. */
  name: string;
}

const args = (key: LockKey) => [key.namespace, key.name];

/**
 * The SQL call that takes `key`'s lock until the transaction ends, for a statement that takes it
 * along with other work (e.g. only for the rows a CTE returned): `bind` adds a value to the
 * statement's parameters and answers its placeholder (`$n`).
 */
export function transactionLockSql(key: LockKey, bind: (value: string) => string): string {
  return `pg_advisory_xact_lock(hashtext(${bind(key.namespace)}), hashtext(${bind(key.name)}))`;
}

/** Takes the lock until the current transaction ends (commit or rollback releases it). */
export async function lockForTransaction(client: Pick<PoolClient, 'query'>, key: LockKey): Promise<void> {
  const values: string[] = [];
  await client.query(`SELECT ${transactionLockSql(key, (value) => `$${values.push(value)}`)}`, values);
}

/**
 * Takes the lock for the session of `client`, waiting for it; it is held until unlocked or the
 * session ends (for a dedicated connection whose end is the release).
 */
export async function lockForSession(client: Pick<PoolClient, 'query'>, key: LockKey): Promise<void> {
  await client.query('SELECT pg_advisory_lock(hashtext($1), hashtext($2))', args(key));
}

/** As lockForSession, but answers false at once when another session holds the lock. */
export async function tryLockForSession(client: Pick<PoolClient, 'query'>, key: LockKey): Promise<boolean> {
  const { rows } = await client.query<{ locked: boolean }>(
    'SELECT pg_try_advisory_lock(hashtext($1), hashtext($2)) AS locked',
    args(key),
  );
  return rows[0]?.locked === true;
}

/** Releases a lock the session of `client` holds (once per time it was taken). */
export async function unlockForSession(client: Pick<PoolClient, 'query'>, key: LockKey): Promise<void> {
  await client.query('SELECT pg_advisory_unlock(hashtext($1), hashtext($2))', args(key));
}

/**
 * Runs `work` on one connection that holds the lock for the whole session, waiting for it. The
 * lock is released after `work`, and a connection whose release failed is thrown away rather
 * than returned to the pool still holding it.
 */
export async function withAdvisoryLock<T>(
  pool: Pool,
  key: LockKey,
  work: (client: PoolClient) => Promise<T>,
): Promise<T> {
  const held = await holding(pool, key, work, { wait: true });
  if (!held.locked) throw new Error(`advisory lock ${key.namespace} was not taken`);
  return held.value;
}

/** As withAdvisoryLock, but resolves `{ locked: false }` at once when another session holds the lock. */
export function withAdvisoryLockIfFree<T>(
  pool: Pool,
  key: LockKey,
  work: (client: PoolClient) => Promise<T>,
): Promise<{ locked: true; value: T } | { locked: false }> {
  return holding(pool, key, work, { wait: false });
}

async function holding<T>(
  pool: Pool,
  key: LockKey,
  work: (client: PoolClient) => Promise<T>,
  options: { wait: boolean },
): Promise<{ locked: true; value: T } | { locked: false }> {
  const client = await pool.connect();
  // 'failed' until Postgres answered: a connection that failed to lock is not trusted again.
  let state: 'failed' | 'declined' | 'locked' = 'failed';
  try {
    if (!options.wait) {
      if (!(await tryLockForSession(client, key))) {
        state = 'declined';
        return { locked: false };
      }
    } else {
      await lockForSession(client, key);
    }
    state = 'locked';
    return { locked: true, value: await work(client) };
  } finally {
    const reusable =
      state === 'declined' ||
      (state === 'locked' &&
        (await unlockForSession(client, key).then(
          () => true,
          () => false,
        )));
    client.release(reusable ? undefined : true);
  }
}
