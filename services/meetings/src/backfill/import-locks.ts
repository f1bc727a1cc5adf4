import { connectDedicated, tryLockForSession, unlockForSession, type Logger } from '@calsync/service-kit';
import type { Client } from 'pg';

/** One import held by this instance: no other run of it goes on anywhere until it is released. */
export interface ImportLock {
  /** Aborted when the lock is lost with its database connection: another run may start, so this one stops. */
  lost: AbortSignal;
  release(): Promise<void>;
}

/**
 * One run of an import at a time, across every instance. JetStream delivers a BackfillRequested
 * again when its ack wait runs out while a run of it is still going (the process was paused or
 * starved of CPU), to this instance or another; two runs would both continue from the same
 * checkpoint and fetch every page twice. The lock is a Postgres session advisory lock on one
 * connection of the instance's own (not the pool's, so a held import never takes a connection its
 * applies need); advisory locks are re-entrant within a session, so the instance also keeps the
 * imports it holds itself.
 */
export interface ImportLocks {
  /** The import's lock, or undefined while another run of it holds it (here or elsewhere). */
  take(requestId: string): Promise<ImportLock | undefined>;
  /** Ends the connection, which releases every lock it holds. */
  close(): Promise<void>;
}

interface Session {
  client: Client;
  lost: AbortController;
}

const lockKey = (requestId: string) => ({ namespace: 'meetings.import', name: requestId });

export function createImportLocks(deps: { databaseUrl: string; log: Logger }): ImportLocks {
  const { log } = deps;
  const held = new Set<string>();
  let session: Promise<Session> | undefined;
  let closed = false;

  const open = (): Promise<Session> => {
    if (!session) {
      const opening: Promise<Session> = connectDedicated({
        url: deps.databaseUrl,
        applicationName: 'meetings-import-locks',
        log,
      }).then(
        async (client) => {
          if (closed) {
            // close() ran while this connected: nothing may hold a lock on it.
            await client.end().catch(() => undefined);
            throw new Error('import locks are closed');
          }
          const lost = new AbortController();
          client.once('end', () => {
            if (held.size > 0) log.warn({ imports: held.size }, 'import locks lost with their connection');
            lost.abort(new Error('the import lock was lost with its database connection'));
            if (session === opening) session = undefined;
          });
          return { client, lost };
        },
        (error: unknown) => {
          if (session === opening) session = undefined;
          throw error;
        },
      );
      session = opening;
    }
    return session;
  };

  return {
    async take(requestId) {
      if (closed) throw new Error('import locks are closed');
      if (held.has(requestId)) return undefined;
      // Kept before the first await, so a second take here answers at once.
      held.add(requestId);
      let taken: Session;
      try {
        taken = await open();
        if (!(await tryLockForSession(taken.client, lockKey(requestId)))) {
          held.delete(requestId);
          return undefined;
        }
      } catch (error) {
        held.delete(requestId);
        throw error;
      }
      return {
        lost: taken.lost.signal,
        async release() {
          try {
            if (!taken.lost.signal.aborted) await unlockForSession(taken.client, lockKey(requestId));
          } catch (error) {
            // A lock that could not be released is released with its session.
            log.warn({ err: error, requestId }, 'could not release an import lock; ending its connection');
            await taken.client.end().catch(() => undefined);
          } finally {
            held.delete(requestId);
          }
        },
      };
    },

    async close() {
      closed = true;
      const ending = session;
      session = undefined;
      if (ending) await (await ending.catch(() => undefined))?.client.end().catch(() => undefined);
    },
  };
}
