import { withAdvisoryLock, type Pool, type PoolClient } from '@calsync/service-kit';

/**
 * Runs `work` holding the user's advisory lock, on the one connection that holds it: Ensure,
 * Remove and reconcile of one user take turns across every replica, and a worker needs no
 * second connection while it waits on Calendly.
 */
export function withUserLock<T>(pool: Pool, userId: string, work: (client: PoolClient) => Promise<T>): Promise<T> {
  return withAdvisoryLock(pool, { namespace: 'subscription.user', name: userId }, work);
}
