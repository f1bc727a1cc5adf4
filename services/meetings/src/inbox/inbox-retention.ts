import type { Logger, Pool } from '@calsync/service-kit';

/**
 * Deletes inbox keys older than the retention, in small batches so no long lock is held.
 * Safe because a key only guards against redeliveries, which come within Calendly's 24-hour
 * retry window and JetStream's redelivery bounds; and should a very late one slip through,
 * applying is order-proof (an older state never overwrites a newer one).
 */
export async function pruneInbox(pool: Pool, retentionDays: number, batchSize = 5_000): Promise<number> {
  let deleted = 0;
  for (;;) {
    const { rowCount } = await pool.query(
      `DELETE FROM inbox WHERE ctid IN (
         SELECT ctid FROM inbox WHERE applied_at < now() - make_interval(days => $1) LIMIT $2)`,
      [retentionDays, batchSize],
    );
    deleted += rowCount ?? 0;
    if ((rowCount ?? 0) < batchSize) return deleted;
  }
}

/** Prunes the inbox now and then every `intervalMs`; 0 days keeps every key for ever. */
export function startInboxRetention(options: { pool: Pool; retentionDays: number; log: Logger; intervalMs?: number }): {
  stop(): void;
} {
  if (options.retentionDays === 0) return { stop: () => undefined };
  const prune = () =>
    pruneInbox(options.pool, options.retentionDays).then(
      (deleted) => deleted > 0 && options.log.info({ deleted }, 'inbox pruned'),
      (error: unknown) => options.log.warn({ err: error }, 'inbox pruning failed'),
    );
  void prune();
  const timer = setInterval(() => void prune(), options.intervalMs ?? 3_600_000);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
