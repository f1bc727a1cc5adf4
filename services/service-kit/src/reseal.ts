import type { Logger } from './logger';
import { inTransaction, type Pool } from './postgres';
import type { Sealer } from './sealing';

/**
 * A table whose columns hold sealed values: rows are walked in the order of `key` (a unique text
 * column), and each value is opened and sealed again with the context it was bound to.
 */
export interface SealedTable {
  table: string;
  key: string;
  /** Further columns the sealing contexts are built from. */
  contextColumns?: string[];
  columns: { column: string; context: (row: Record<string, string | null>) => string }[];
  /** How a row is named in the log when it cannot be opened (never a secret); `{ key }` by default. */
  describe?: (row: Record<string, string | null>) => Record<string, string | null>;
}

export interface ResealReport {
  /** Rows re-sealed under the active key, by table. */
  resealed: Record<string, number>;
  /** Rows that could not be opened with any configured key (left as they are). */
  unreadable: number;
  passes: number;
  /** True when the last pass found nothing left to re-seal. */
  settled: boolean;
}

const identifier = /^[a-z_][a-z0-9_]*$/;

/**
 * The one key-rotation loop: re-seals every sealed value of `tables` under the sealer's active
 * key, in small transactions that lock only their batch (readers never wait; a writer of a row
 * waits a few milliseconds at most), so the service keeps serving. Passes repeat until one finds
 * nothing to do: a replica still sealing with the old key shows as a pass that never settles.
 */
export async function resealAll(options: {
  pool: Pool;
  sealer: Sealer;
  log: Logger;
  tables: SealedTable[];
  batchSize: number;
  maxPasses?: number;
  lockTimeoutMs?: number;
}): Promise<ResealReport> {
  const { pool, sealer, log, batchSize } = options;
  const maxPasses = options.maxPasses ?? 5;
  const report: ResealReport = { resealed: {}, unreadable: 0, passes: 0, settled: false };
  const unreadable = new Set<string>();
  for (const spec of options.tables) {
    const names = [spec.table, spec.key, ...(spec.contextColumns ?? []), ...spec.columns.map((c) => c.column)];
    const bad = names.find((name) => !identifier.test(name));
    if (bad !== undefined) throw new Error(`not a plain SQL identifier: ${bad}`);
  }

  async function resealBatch(
    spec: SealedTable,
    after: string,
  ): Promise<{ last?: string; rows: number; resealed: number }> {
    return inTransaction(pool, async (client) => {
      await client.query("SELECT set_config('lock_timeout', $1, true)", [`${options.lockTimeoutMs ?? 30_000}ms`]);
      const selected = [...new Set([...(spec.contextColumns ?? []), ...spec.columns.map((c) => c.column)])];
      const result = await client.query<Record<string, string | null>>(
        `SELECT ${spec.key} AS reseal_key, ${selected.join(', ')} FROM ${spec.table}
         WHERE ${spec.key} > $1 ORDER BY ${spec.key} LIMIT $2 FOR UPDATE`,
        [after, batchSize],
      );
      let resealed = 0;
      for (const row of result.rows) {
        const key = row.reseal_key!;
        const withKey = { ...row, [spec.key]: key };
        const stale = spec.columns.filter(({ column }) => row[column] && sealer.needsReseal(row[column]));
        if (stale.length === 0 || unreadable.has(`${spec.table}/${key}`)) continue;
        let values: string[];
        try {
          values = stale.map(({ column, context }) =>
            sealer.seal(sealer.open(row[column]!, context(withKey)), context(withKey)),
          );
        } catch (error) {
          unreadable.add(`${spec.table}/${key}`);
          const named = spec.describe?.(withKey) ?? { key };
          log.error({ table: spec.table, ...named, err: error }, 'sealed value cannot be opened; left as it is');
          continue;
        }
        const assignments = stale.map(({ column }, index) => `${column} = $${index + 2}`).join(', ');
        await client.query(`UPDATE ${spec.table} SET ${assignments} WHERE ${spec.key} = $1`, [key, ...values]);
        resealed++;
      }
      return { last: result.rows.at(-1)?.reseal_key ?? undefined, rows: result.rows.length, resealed };
    });
  }

  while (report.passes < maxPasses) {
    report.passes++;
    let resealedThisPass = 0;
    for (const spec of options.tables) {
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
