import type { Logger, Pool, Sealer } from '@calsync/service-kit';
import { signingKeyContext } from './hook-loader';

export interface ResealReport {
  resealed: number;
  /** Keys no configured sealing key opens (left as they are). */
  unreadable: number;
  /** Keys still sealed with another key after the pass (changed under us, or unreadable). */
  remaining: number;
}

/**
 * Re-seals every signing key under the sealer's active key, a batch at a time, while the
 * service serves: each row is replaced only if it still holds the value that was read, so a
 * concurrent change is never overwritten (the next pass picks it up).
 */
export async function resealSigningKeys(options: {
  pool: Pool;
  sealer: Sealer;
  log: Logger;
  batchSize?: number;
}): Promise<ResealReport> {
  const { pool, sealer, log } = options;
  const batchSize = options.batchSize ?? 500;
  const report: ResealReport = { resealed: 0, unreadable: 0, remaining: 0 };
  let after = '';
  for (;;) {
    const { rows } = await pool.query<{ hook_id: string; signing_key_sealed: string }>(
      `SELECT hook_id, signing_key_sealed FROM webhooks
       WHERE signing_key_sealed IS NOT NULL AND hook_id > $1 ORDER BY hook_id LIMIT $2`,
      [after, batchSize],
    );
    if (rows.length === 0) break;
    after = rows.at(-1)!.hook_id;
    for (const row of rows) {
      if (!sealer.needsReseal(row.signing_key_sealed)) continue;
      let resealed: string;
      try {
        const context = signingKeyContext(row.hook_id);
        resealed = sealer.seal(sealer.open(row.signing_key_sealed, context), context);
      } catch (error) {
        report.unreadable += 1;
        log.error({ hookId: row.hook_id, err: error }, 'signing key cannot be opened; left as it is');
        continue;
      }
      const result = await pool.query(
        'UPDATE webhooks SET signing_key_sealed = $3 WHERE hook_id = $1 AND signing_key_sealed = $2',
        [row.hook_id, row.signing_key_sealed, resealed],
      );
      report.resealed += result.rowCount ?? 0;
    }
  }
  const { rows } = await pool.query<{ sealed: string }>(
    'SELECT signing_key_sealed AS sealed FROM webhooks WHERE signing_key_sealed IS NOT NULL',
  );
  report.remaining = rows.filter((row) => sealer.needsReseal(row.sealed)).length;
  return report;
}
