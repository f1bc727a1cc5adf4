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

/**
 * Deletes the records of finished gap backfills (reconcile's, and polling's every few minutes per
 * polled user) older than the retention. Their checkpoints are of no more use once finished; a
 * request delivered again after that runs again, and changes nothing (its inbox keys, or
 * order-proof applying). Initial imports stay: they are the connection's sync state.
 */
export async function pruneFinishedBackfills(pool: Pool, retentionDays: number, batchSize = 5_000): Promise<number> {
  let deleted = 0;
  for (;;) {
    const { rowCount } = await pool.query(
      `DELETE FROM imports WHERE request_id IN (
         SELECT request_id FROM imports
         WHERE kind = 'gap' AND status IN ('completed', 'failed')
           AND updated_at < now() - make_interval(days => $1)
         LIMIT $2)`,
      [retentionDays, batchSize],
    );
    deleted += rowCount ?? 0;
    if ((rowCount ?? 0) < batchSize) return deleted;
  }
}

/**
 * Deletes delivery log rows older than the retention: what a user or an operator looks back at,
 * days rather than months.
 */
export async function pruneDeliveryLog(pool: Pool, retentionDays: number, batchSize = 5_000): Promise<number> {
  let deleted = 0;
  for (;;) {
    const { rowCount } = await pool.query(
      `DELETE FROM delivery_log WHERE id IN (
         SELECT id FROM delivery_log WHERE recorded_at < now() - make_interval(days => $1) LIMIT $2)`,
      [retentionDays, batchSize],
    );
    deleted += rowCount ?? 0;
    if ((rowCount ?? 0) < batchSize) return deleted;
  }
}

/**
 * Prunes the inbox (and finished gap backfills), and the delivery log with its own retention, now
 * and then every `intervalMs`; 0 days keeps them for ever.
 */
export function startInboxRetention(options: {
  pool: Pool;
  retentionDays: number;
  deliveryLogRetentionDays: number;
  log: Logger;
  intervalMs?: number;
}): {
  stop(): void;
} {
  if (options.retentionDays === 0 && options.deliveryLogRetentionDays === 0) return { stop: () => undefined };
  const prune = async () => {
    try {
      if (options.retentionDays > 0) {
        const deleted = await pruneInbox(options.pool, options.retentionDays);
        const backfills = await pruneFinishedBackfills(options.pool, options.retentionDays);
        if (deleted > 0 || backfills > 0) options.log.info({ deleted, backfills }, 'inbox pruned');
      }
      if (options.deliveryLogRetentionDays > 0) {
        const deliveries = await pruneDeliveryLog(options.pool, options.deliveryLogRetentionDays);
        if (deliveries > 0) options.log.info({ deliveries }, 'delivery log pruned');
      }
    } catch (error) {
      options.log.warn({ err: error }, 'inbox pruning failed');
    }
  };
  void prune();
  const timer = setInterval(() => void prune(), options.intervalMs ?? 3_600_000);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
