import { lockForTransaction, type PoolClient } from '@calsync/service-kit';

/** The outcome of asking for one call to Calendly's token endpoint. */
export type TokenBudget = { allowed: true } | { allowed: false; retryAfterSeconds: number };

/**
 * Records one token request for the user if fewer than `perMinute` were made in the last
 * minute, in Postgres so the limit holds across every replica. Call inside a transaction: an
 * advisory lock per user makes the count and the insert one step.
 */
export async function reserveTokenRequest(client: PoolClient, userId: string, perMinute: number): Promise<TokenBudget> {
  await lockForTransaction(client, { namespace: 'identity.token_requests', name: userId });
  await client.query(
    "DELETE FROM token_requests WHERE user_id = $1 AND requested_at <= clock_timestamp() - interval '1 minute'",
    [userId],
  );
  const recent = await client.query<{ count: string; retry_after: number | null }>(
    `SELECT count(*) AS count,
       ceil(extract(epoch FROM min(requested_at) + interval '1 minute' - clock_timestamp()))::int AS retry_after
     FROM token_requests WHERE user_id = $1`,
    [userId],
  );
  const { count, retry_after: retryAfter } = recent.rows[0]!;
  if (Number(count) >= perMinute) return { allowed: false, retryAfterSeconds: Math.max(1, retryAfter ?? 60) };
  await client.query('INSERT INTO token_requests (user_id) VALUES ($1)', [userId]);
  return { allowed: true };
}

/** Forgets token requests older than the window (for users who made none since). */
export async function pruneTokenRequests(client: Pick<PoolClient, 'query'>): Promise<number> {
  const result = await client.query(
    "DELETE FROM token_requests WHERE requested_at <= clock_timestamp() - interval '1 minute'",
  );
  return result.rowCount ?? 0;
}
