import { inTransaction, type Logger, type Pool } from '@calsync/service-kit';
import { lockUserChanges } from '../feed/meeting-changes';

/** A purge request the caller got wrong (the message names what). */
export class PurgeRequestInvalid extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PurgeRequestInvalid';
  }
}

/** The user's messages in the calsync streams. */
export interface UserMessages {
  /** Erases what could still reach this service's tables: deliveries, backfill requests, dead letters. */
  eraseInputs(userId: string): Promise<number>;
  /** Erases the user's change feed. */
  eraseFeed(userId: string): Promise<number>;
}

/**
 * Every table of this service that holds a user's rows, children first. The purge test checks
 * every table of the schema afterwards, so a new table with user data that is missing here fails it.
 */
export const userTables = [
  'invitees',
  'reschedules',
  'meetings',
  'inbox',
  'outbox',
  'imports',
  'delivery_log',
] as const;

export interface UserPurge {
  /** Forgets the user here; idempotent, and a user never seen is simply nothing to do. */
  purge(userId: string): Promise<{ rowsDeleted: number; messagesDeleted: number }>;
}

// eslint-disable-next-line no-control-regex
const controlCharacters = /[\u0000-\u001f\u007f]/;

export function createUserPurge(deps: { pool: Pool; messages: UserMessages; log: Logger }): UserPurge {
  const { pool, messages, log } = deps;
  return {
    async purge(userId) {
      if (!userId) throw new PurgeRequestInvalid('user_id is required');
      if (userId.length > 200) throw new PurgeRequestInvalid('user_id must be at most 200 characters');
      if (controlCharacters.test(userId)) throw new PurgeRequestInvalid('user_id must not contain control characters');
      // Inputs first, so nothing still queued re-creates rows after the delete; the feed last, so
      // it also takes the changes of a delivery that was being applied meanwhile.
      const inputs = await messages.eraseInputs(userId);
      const rowsDeleted = await inTransaction(pool, async (client) => {
        // The lock every change to this user's meetings takes: no apply interleaves with the delete.
        await lockUserChanges(client, userId);
        let deleted = 0;
        for (const table of userTables) {
          const result = await client.query(`DELETE FROM ${table} WHERE user_id = $1`, [userId]);
          deleted += result.rowCount ?? 0;
        }
        return deleted;
      });
      const feed = await messages.eraseFeed(userId);
      const messagesDeleted = inputs + feed;
      log.info({ userId, rowsDeleted, messagesDeleted }, 'user purged');
      return { rowsDeleted, messagesDeleted };
    },
  };
}
