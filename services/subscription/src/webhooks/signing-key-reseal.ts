import {
  resealAll,
  type Logger,
  type Pool,
  type ResealReport,
  type SealedTable,
  type Sealer,
} from '@calsync/service-kit';
import { signingKeyContext } from './hook-loader';

/** subscription's sealed secrets: each webhook's signing key, bound to its hook id. */
export const sealedTables: SealedTable[] = [
  {
    table: 'webhooks',
    key: 'hook_id',
    columns: [{ column: 'signing_key_sealed', context: (row) => signingKeyContext(row.hook_id!) }],
    describe: (row) => ({ hookId: row.hook_id ?? null }),
  },
];

/** Re-seals every signing key under the sealer's active key (the kit's rotation loop). */
export function resealSigningKeys(options: {
  pool: Pool;
  sealer: Sealer;
  log: Logger;
  batchSize?: number;
}): Promise<ResealReport> {
  return resealAll({ ...options, batchSize: options.batchSize ?? 500, tables: sealedTables });
}
