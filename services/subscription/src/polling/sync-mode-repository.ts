import type { Db } from '../webhooks/webhook-repository';

export type SyncModeName = 'webhook' | 'polling';

export const syncModeNames: readonly SyncModeName[] = ['webhook', 'polling'];

/** How one user's meetings reach calsync, and (polling) when their next polls are due. */
export interface SyncModeRow {
  userId: string;
  calendlyUserUri: string;
  mode: SyncModeName;
  /** Why, safe to show the user; empty for webhook. */
  reason: string;
  since: Date;
  nextPollAt: Date | null;
  nextSweepAt: Date | null;
  lastPolledAt: Date | null;
  lastSweptAt: Date | null;
}

/** A polling user's schedule after one of their polls was requested. */
export interface PollDone {
  userId: string;
  nextPollAt: Date;
  nextSweepAt: Date;
  polledAt: Date;
  swept: boolean;
}

export interface SyncModeRepository {
  get(userId: string): Promise<SyncModeRow | undefined>;
  /** get for many users in one query, by user (users without a sync are absent). */
  getMany(userIds: string[]): Promise<Map<string, SyncModeRow>>;
  /** Records the user as synced by their webhook; returns the mode they were in before. */
  useWebhook(userId: string, calendlyUserUri: string): Promise<SyncModeRow | undefined>;
  /**
   * Records the user as polled, for `reason`; a user already polling keeps their schedule (and
   * `since`), one entering polling gets the one given. Returns the mode they were in before.
   */
  usePolling(
    userId: string,
    calendlyUserUri: string,
    reason: string,
    schedule: { nextPollAt: Date; nextSweepAt: Date },
  ): Promise<SyncModeRow | undefined>;
  /** Resolves the rows deleted (0 or 1). */
  forget(userId: string): Promise<number>;
  /**
   * Polling users whose short poll or sweep is due at `now`, earliest first, locked for the
   * caller's transaction (rows another replica holds are skipped).
   */
  claimDue(now: Date, limit: number): Promise<SyncModeRow[]>;
  recordPoll(done: PollDone): Promise<void>;
  /** Polling users whose last requested poll is older than `before` (or who were never polled since before it). */
  countBehind(before: Date): Promise<number>;
  /** Users in each mode (modes with none are absent): one GROUP BY, for metrics and operators. */
  countByMode(): Promise<Map<SyncModeName, number>>;
}

interface Row {
  user_id: string;
  calendly_user_uri: string;
  mode: SyncModeName;
  reason: string;
  since: Date;
  next_poll_at: Date | null;
  next_sweep_at: Date | null;
  last_polled_at: Date | null;
  last_swept_at: Date | null;
}

const columns =
  'user_id, calendly_user_uri, mode, reason, since, next_poll_at, next_sweep_at, last_polled_at, last_swept_at';

const fromRow = (row: Row): SyncModeRow => ({
  userId: row.user_id,
  calendlyUserUri: row.calendly_user_uri,
  mode: row.mode,
  reason: row.reason,
  since: row.since,
  nextPollAt: row.next_poll_at,
  nextSweepAt: row.next_sweep_at,
  lastPolledAt: row.last_polled_at,
  lastSweptAt: row.last_swept_at,
});

export function createSyncModeRepository(db: Db): SyncModeRepository {
  const previousOf = async (userId: string) => {
    const { rows } = await db.query<Row>(`SELECT ${columns} FROM sync_modes WHERE user_id = $1 FOR UPDATE`, [userId]);
    return rows[0] ? fromRow(rows[0]) : undefined;
  };

  return {
    async get(userId) {
      const { rows } = await db.query<Row>(`SELECT ${columns} FROM sync_modes WHERE user_id = $1`, [userId]);
      return rows[0] ? fromRow(rows[0]) : undefined;
    },

    async getMany(userIds) {
      if (userIds.length === 0) return new Map();
      const { rows } = await db.query<Row>(`SELECT ${columns} FROM sync_modes WHERE user_id = ANY($1::text[])`, [
        userIds,
      ]);
      return new Map(rows.map((row) => [row.user_id, fromRow(row)]));
    },

    async useWebhook(userId, calendlyUserUri) {
      const previous = await previousOf(userId);
      await db.query(
        `INSERT INTO sync_modes (user_id, calendly_user_uri, mode) VALUES ($1, $2, 'webhook')
         ON CONFLICT (user_id) DO UPDATE SET calendly_user_uri = EXCLUDED.calendly_user_uri, mode = 'webhook',
           reason = '', since = CASE WHEN sync_modes.mode = 'webhook' THEN sync_modes.since ELSE now() END,
           next_poll_at = NULL, next_sweep_at = NULL`,
        [userId, calendlyUserUri],
      );
      return previous;
    },

    async usePolling(userId, calendlyUserUri, reason, schedule) {
      const previous = await previousOf(userId);
      await db.query(
        `INSERT INTO sync_modes (user_id, calendly_user_uri, mode, reason, next_poll_at, next_sweep_at)
         VALUES ($1, $2, 'polling', $3, $4, $5)
         ON CONFLICT (user_id) DO UPDATE SET calendly_user_uri = EXCLUDED.calendly_user_uri, reason = EXCLUDED.reason,
           since = CASE WHEN sync_modes.mode = 'polling' THEN sync_modes.since ELSE now() END,
           next_poll_at = CASE WHEN sync_modes.mode = 'polling' THEN sync_modes.next_poll_at ELSE EXCLUDED.next_poll_at END,
           next_sweep_at = CASE WHEN sync_modes.mode = 'polling' THEN sync_modes.next_sweep_at ELSE EXCLUDED.next_sweep_at END,
           mode = 'polling'`,
        [userId, calendlyUserUri, reason, schedule.nextPollAt, schedule.nextSweepAt],
      );
      return previous;
    },

    async forget(userId) {
      return (await db.query('DELETE FROM sync_modes WHERE user_id = $1', [userId])).rowCount ?? 0;
    },

    async claimDue(now, limit) {
      const { rows } = await db.query<Row>(
        `SELECT ${columns} FROM sync_modes
         WHERE mode = 'polling' AND LEAST(next_poll_at, next_sweep_at) <= $1
         ORDER BY LEAST(next_poll_at, next_sweep_at) LIMIT $2 FOR UPDATE SKIP LOCKED`,
        [now, limit],
      );
      return rows.map(fromRow);
    },

    async recordPoll(done) {
      await db.query(
        `UPDATE sync_modes SET next_poll_at = $2, next_sweep_at = $3, last_polled_at = $4,
           last_swept_at = CASE WHEN $5 THEN $4 ELSE last_swept_at END
         WHERE user_id = $1 AND mode = 'polling'`,
        [done.userId, done.nextPollAt, done.nextSweepAt, done.polledAt, done.swept],
      );
    },

    async countBehind(before) {
      const { rows } = await db.query<{ count: string }>(
        `SELECT count(*) FROM sync_modes
         WHERE mode = 'polling' AND COALESCE(last_polled_at, since) < $1`,
        [before],
      );
      return Number(rows[0]!.count);
    },

    async countByMode() {
      const { rows } = await db.query<{ mode: SyncModeName; count: string }>(
        'SELECT mode, count(*) AS count FROM sync_modes GROUP BY mode',
      );
      return new Map(rows.map((row) => [row.mode, Number(row.count)]));
    },
  };
}
