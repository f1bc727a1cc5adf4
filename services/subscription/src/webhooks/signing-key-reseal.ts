import type { SealedTable } from '@calsync/service-kit';
import { signingKeyContext } from './hook-loader';

/** subscription's sealed secrets for the kit's rotation loop: each webhook's signing key, bound to its hook id. */
export const sealedTables: SealedTable[] = [
  {
    table: 'webhooks',
    key: 'hook_id',
    columns: [{ column: 'signing_key_sealed', context: (row) => signingKeyContext(row.hook_id!) }],
    describe: (row) => ({ hookId: row.hook_id ?? null }),
  },
];
