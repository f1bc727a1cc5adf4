import type { SealedTable } from '@calsync/service-kit';
import { secretContext, type SecretColumn } from '../connections/secret-context';

const boundToUser = (column: string, secret: SecretColumn) => ({
  column,
  context: (row: Record<string, string | null>) => secretContext(secret, row.user_id!),
});

/** identity's sealed secrets: each bound to its row's user id. */
export const sealedTables: SealedTable[] = [
  {
    table: 'connections',
    key: 'user_id',
    contextColumns: ['user_id'],
    columns: [boundToUser('access_token_sealed', 'access_token'), boundToUser('refresh_token_sealed', 'refresh_token')],
    describe: (row) => ({ userId: row.user_id ?? null }),
  },
  {
    table: 'oauth_states',
    key: 'state_hash',
    contextColumns: ['user_id'],
    columns: [boundToUser('code_verifier_sealed', 'code_verifier')],
    describe: (row) => ({ userId: row.user_id ?? null }),
  },
];
