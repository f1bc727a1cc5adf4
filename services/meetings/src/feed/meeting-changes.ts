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
 * How the relay hears of a change once it committed: by the NOTIFY its statement sends at commit,
 * or, while the relay in the writer's own process leads, handed over by the writer after the
 * commit (LocalRelay.handOver), which then needs the row's seq and the user's earlier rows.
 */
export type RelayWakeUp = 'notify' | 'hand-over';

/** What the statement answers for 'hand-over': the row's seq, and the seqs of the user's rows before it still in the outbox. */
export interface RecordedChangeRow {
  seq: string;
  earlier_seqs: string[];
}

/**
 * The statement that writes the change's MeetingChanged into the outbox, and `alongside` (e.g.
 * the delivery's log row) with it, for the caller to run on its transaction (as its last, with the
 * COMMIT: `Transaction.commitWith`). `wakeUp: 'hand-over'` leaves out the relay's NOTIFY and
 * answers a RecordedChangeRow instead, for a caller that hands the change to its relay itself once
 * the transaction committed (`handOver`).
 */
export function recordChangeStatement(
  input: { userId: string; kind: MeetingChangeKind; meeting: MeetingRecord; eventType: string; changedAt?: Date },
  options: { alongside?: AlongsideStatement; wakeUp: RelayWakeUp },
): { changeId: string; message: Buffer; statement: QueryConfig<unknown[]> } {
  const changeId = randomUUID();
  const encoded = encodeMeetingChanged({
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
  const message = Buffer.from(encoded.buffer, encoded.byteOffset, encoded.byteLength);
  const values: unknown[] = [changeId, input.userId, message];
  const other = options.alongside?.((value) => `$${values.push(value)}`);
  // One statement: the row, and either the relay's wake-up (sent at commit, never for a rollback)
  // or what a hand-over needs. The user's earlier rows are read under the user's lock, taken
  // earlier in the transaction: every change of theirs committed before it is visible here.
  const answer =
    options.wakeUp === 'notify'
      ? `pg_notify('${outboxChannel}', '')`
      : `change.seq::text AS seq,
         ARRAY(SELECT earlier.seq::text FROM outbox earlier WHERE earlier.user_id = $2 ORDER BY earlier.seq) AS earlier_seqs`;
  const statement = prepared(
    `WITH change AS (INSERT INTO outbox (change_id, user_id, message) VALUES ($1, $2, $3) RETURNING seq)
     ${other ? `, alongside AS (${other})` : ''}
     SELECT ${answer} FROM change`,
    values,
  );
  return { changeId, message, statement };
}
