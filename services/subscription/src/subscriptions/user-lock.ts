import type { Pool, PoolClient } from '@calsync/service-kit';

/** The advisory-lock namespace of per-user webhook work (the second key is the user id's hash). */
const userLockNamespace = 52_001;

/**
 * Runs `work` holding a Postgres advisory lock for the user, on the one connection that holds
 * it: Ensure, Remove and reconcile of one user take turns across every replica, and a worker
 * needs no second connection while it waits on Calendly. A hash collision only makes two users
 * take turns.
 */
export async function withUserLock<T>(
  pool: Pool,
  userId: string,
  work: (client: PoolClient) => Promise<T>,
): Promise<T> {
  const client = await pool.connect();
  let locked = false;
  try {
    await client.query('SELECT pg_advisory_lock($1, hashtext($2))', [userLockNamespace, userId]);
    locked = true;
    return await work(client);
  } finally {
    if (locked) {
      const released = await client
        .query('SELECT pg_advisory_unlock($1, hashtext($2))', [userLockNamespace, userId])
        .then(
          () => true,
          () => false,
        );
      // A connection whose unlock failed may still hold the lock: throw it away rather than reuse it.
      client.release(released ? undefined : true);
    } else {
      client.release(true);
    }
  }
}
