import { inTransaction, type Logger, type Pool, type Sealer } from '@calsync/service-kit';
import { secretContext, type SecretColumn } from '../connections/secret-context';

/** A table with sealed columns, keyed by a text column, each secret bound to the row's user id. */
interface SealedTable {
  table: string;
  key: string;
  columns: { column: string; secret: SecretColumn }[];
}

const sealedTables: SealedTable[] = [
  {
    table: 'connections',
    key: 'user_id',
    columns: [
      { column: 'access_token_sealed', secret: 'access_token' },
      { column: 'refresh_token_sealed', secret: 'refresh_token' },
    ],
  },
  { table: 'oauth_states', key: 'state_hash', columns: [{ column: 'code_verifier_sealed', secret: 'code_verifier' }] },
];

export interface ResealReport {
  /** Rows re-sealed under the active key, by table. */
  resealed: Record<string, number>;
  /** Rows that could not be opened with any configured key (left as they are). */
  unreadable: number;
  passes: number;
  /** True when the last pass found nothing left to re-seal. */
  settled: boolean;
}

/**
 * Re-seals every secret under the sealer's active key, in small transactions that lock only
 * their batch (readers never wait; a refresh of a row waits a few milliseconds at most), so the
 * service keeps serving. Passes repeat until one finds nothing to do: a replica still sealing
 * with the old key would show up as a pass that never settles.
 */
export async function resealAll(options: {
  pool: Pool;
  sealer: Sealer;
  log: Logger;
  batchSize: number;
  maxPasses?: number;
  lockTimeoutMs?: number;
}): Promise<ResealReport> {
  const { pool, sealer, log, batchSize } = options;
  const maxPasses = options.maxPasses ?? 5;
  const report: ResealReport = { resealed: {}, unreadable: 0, passes: 0, settled: false };
  const unreadable = new Set<string>();

  async function resealBatch(
    spec: SealedTable,
    after: string,
  ): Promise<{ last?: string; rows: number; resealed: number }> {
    return inTransaction(pool, async (client) => {
      await client.query("SELECT set_config('lock_timeout', $1, true)", [`${options.lockTimeoutMs ?? 30_000}ms`]);
      const columns = spec.columns.map((c) => c.column).join(', ');
      const result = await client.query<Record<string, string | null>>(
        `SELECT ${spec.key} AS key, user_id, ${columns} FROM ${spec.table}
         WHERE ${spec.key} > $1 ORDER BY ${spec.key} LIMIT $2 FOR UPDATE`,
        [after, batchSize],
      );
      let resealed = 0;
      for (const row of result.rows) {
        const key = row.key!;
        const userId = row.user_id!;
        const stale = spec.columns.filter(({ column }) => row[column] && sealer.needsReseal(row[column]));
        if (stale.length === 0 || unreadable.has(`${spec.table}/${key}`)) continue;
        let values: string[];
        try {
          values = stale.map(({ column, secret }) =>
            sealer.seal(sealer.open(row[column]!, secretContext(secret, userId)), secretContext(secret, userId)),
          );
        } catch (error) {
          unreadable.add(`${spec.table}/${key}`);
          log.error({ table: spec.table, userId, err: error }, 'sealed value cannot be opened; left as it is');
          continue;
        }
        const assignments = stale.map(({ column }, index) => `${column} = $${index + 2}`).join(', ');
        await client.query(`UPDATE ${spec.table} SET ${assignments} WHERE ${spec.key} = $1`, [key, ...values]);
        resealed++;
      }
      return { last: result.rows.at(-1)?.key ?? undefined, rows: result.rows.length, resealed };
    });
  }

  while (report.passes < maxPasses) {
    report.passes++;
    let resealedThisPass = 0;
    for (const spec of sealedTables) {
      let cursor = '';
      for (;;) {
        const batch = await resealBatch(spec, cursor);
        resealedThisPass += batch.resealed;
        report.resealed[spec.table] = (report.resealed[spec.table] ?? 0) + batch.resealed;
        if (batch.rows < batchSize || batch.last === undefined) break;
        cursor = batch.last;
      }
    }
    log.info({ pass: report.passes, resealed: resealedThisPass, activeKeyId: sealer.activeKeyId }, 'reseal pass done');
    if (resealedThisPass === 0) {
      report.settled = true;
      break;
    }
  }
  report.unreadable = unreadable.size;
  return report;
}
