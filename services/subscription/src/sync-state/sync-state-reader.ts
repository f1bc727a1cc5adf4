import type { Logger } from '@calsync/service-kit';
import { notConnected } from '../errors';
import type { Connections } from '../upstream/identity-connections';
import type { ImportReports } from '../upstream/meetings-import-reports';
import type { Subscriptions } from '../subscriptions/subscriptions';
import { syncStateOf, type SyncState } from './sync-state';

export interface SyncStateReader {
  /** The user's sync state, asked of each owner; throws NOT_CONNECTED without a connection: there is no sync to describe. */
  read(userId: string): Promise<SyncState>;
}

/**
 * Composes a user's sync state from identity (token health), this service (webhooks, sync mode,
 * the import it requested) and meetings (the import's progress). Meetings not answering leaves
 * the import's progress unknown and fails nothing: the state is then decided from the rest.
 */
export function createSyncStateReader(deps: {
  subscriptions: Pick<Subscriptions, 'list' | 'syncMode' | 'initialImport'>;
  connections: Pick<Connections, 'stateOf'>;
  imports: Pick<ImportReports, 'latest'>;
  log: Logger;
}): SyncStateReader {
  const { subscriptions, connections, imports, log } = deps;
  const latestImport = async (userId: string) => {
    try {
      return await imports.latest(userId);
    } catch (error) {
      log.warn({ userId, err: error }, 'import progress unknown: meetings did not answer');
      return 'unknown' as const;
    }
  };
  return {
    async read(userId) {
      // Validates the user id before anyone else is asked.
      const hooks = await subscriptions.list(userId);
      const [connection, syncMode, requested] = await Promise.all([
        connections.stateOf(userId),
        subscriptions.syncMode(userId),
        subscriptions.initialImport(userId),
      ]);
      if (!connection) throw notConnected();
      const latest = requested ? await latestImport(userId) : undefined;
      return syncStateOf({ connection, hooks, syncMode, requested, latest });
    },
  };
}
