import { randomUUID } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import { meetingsV1, reusingEncoder } from '@calsync/proto';
import {
  lockForTransaction,
  prepared,
  transactionLockSql,
  type LockKey,
  type PoolClient,
  type QueryConfig,
} from '@calsync/service-kit';
import { toMeeting } from '../meetings/meeting-proto';
import type { MeetingRecord } from '../meetings/meeting-queries';

export type MeetingChangeKind = 'created' | 'updated' | 'canceled' | 'rescheduled' | 'no_show' | 'removed';

/** The Postgres channel the relay listens on; NOTIFY is delivered at commit, so never for a rollback. */
export const outboxChannel = 'meetings_outbox';

const kinds: Record<MeetingChangeKind, meetingsV1.MeetingChangeKind> = {
  created: meetingsV1.MeetingChangeKind.MEETING_CHANGE_KIND_CREATED,
  updated: meetingsV1.MeetingChangeKind.MEETING_CHANGE_KIND_UPDATED,
  canceled: meetingsV1.MeetingChangeKind.MEETING_CHANGE_KIND_CANCELED,
  rescheduled: meetingsV1.MeetingChangeKind.MEETING_CHANGE_KIND_RESCHEDULED,
  no_show: meetingsV1.MeetingChangeKind.MEETING_CHANGE_KIND_NO_SHOW,
  removed: meetingsV1.MeetingChangeKind.MEETING_CHANGE_KIND_REMOVED,
};

/**
 * What a delivery did to a meeting, from the meeting before and after it; null when it changed
 * nothing anyone can see (a redelivery under another key, an older snapshot, an import of what
 * is already known), so a change feed consumer hears of each real change exactly once.
 */
export function changeKindOf(
  before: MeetingRecord | null,
  after: MeetingRecord,
  cause: { eventType: string; rescheduled: boolean },
): MeetingChangeKind | null {
  if (!before) return 'created';
  if (isDeepStrictEqual(before, after)) return null;
  if (cause.eventType.startsWith('invitee_no_show.')) return 'no_show';
  if (before.status === 'active' && after.status === 'canceled') return cause.rescheduled ? 'rescheduled' : 'canceled';
  return 'updated';
}

const encodeMeetingChanged = reusingEncoder(meetingsV1.MeetingChanged);

const userChangesLock = (userId: string): LockKey => ({ namespace: 'meetings.user', name: userId });

/**
 * Serialises a user's changes: taken first in every transaction that changes the user's meetings,
 * so their outbox rows are numbered in the order they commit.
 */
export async function lockUserChanges(client: PoolClient, userId: string): Promise<void> {
  await lockForTransaction(client, userChangesLock(userId));
}

/** lockUserChanges as a call inside a larger statement (`bind` answers a value's `$n`). */
export function lockUserChangesSql(userId: string, bind: (value: string) => string): string {
  return transactionLockSql(userChangesLock(userId), bind);
}

/**
 * A data-modifying statement to run within another one (as a CTE), so that both commit or fail
 * together in one round trip: `bind` adds a value to the shared parameters and answers its `$n`.
 */
export type AlongsideStatement = (bind: (value: unknown) => string) => string;

/**
 * The statement that writes the change's MeetingChanged into the outbox, and `alongside` (e.g.
 * the delivery's log row) with it, for the caller to run on its transaction (as its last, with the
 * COMMIT: `Transaction.commitWith`). `notify: false` leaves out the relay's NOTIFY, for a caller
 * that wakes the relay itself once the transaction committed.
 */
export function recordChangeStatement(
  input: { userId: string; kind: MeetingChangeKind; meeting: MeetingRecord; eventType: string; changedAt?: Date },
  options: { alongside?: AlongsideStatement; notify: boolean },
): { changeId: string; statement: QueryConfig<unknown[]> } {
  const changeId = randomUUID();
  const message = encodeMeetingChanged({
    changeId,
    userId: input.userId,
    kind: kinds[input.kind],
    meetingId: input.meeting.id,
    scheduledEventUri: input.meeting.scheduledEventUri,
    meeting: input.kind === 'removed' ? undefined : toMeeting(input.meeting),
    changedAt: input.changedAt ?? new Date(),
    eventType: input.eventType,
  });
  // A Buffer view of the encoder's copy (node-postgres sends Buffers as bytea), not a second copy.
  const bytes = Buffer.from(message.buffer, message.byteOffset, message.byteLength);
  // One statement: the row, and the relay's wake-up (sent at commit, never for a rollback) unless
  // the caller wakes it.
  const values: unknown[] = [changeId, input.userId, bytes];
  const other = options.alongside?.((value) => `$${values.push(value)}`);
  const statement = prepared(
    `WITH change AS (INSERT INTO outbox (change_id, user_id, message) VALUES ($1, $2, $3) RETURNING 1)
     ${other ? `, alongside AS (${other})` : ''}
     SELECT ${options.notify ? `pg_notify('${outboxChannel}', '')` : '1'} FROM change`,
    values,
  );
  return { changeId, statement };
}
