import { prepared, type Queryable, type Transaction } from '@calsync/service-kit';
import type { CancellationFields, InviteeChange } from './calendly-payload';
import { isDeepStrictEqual } from 'node:util';
import { lockUserChangesSql } from '../feed/meeting-changes';
import {
  meetingFromRows,
  meetingRowsOrder,
  meetingRowsSql,
  meetingTables,
  readMeeting,
  type MeetingExtra,
  type MeetingRecord,
} from './meeting-queries';
import { deriveMeetingStatus, type MeetingStatus, type MeetingStatusInputs } from './meeting-status';

// Every statement below names user_id in its WHERE clause or conflict key: a user's delivery
// can only ever touch that user's rows.

/** Columns written from a snapshot only when the snapshot is newer than the one they came from. */
function newerWins(table: string, columns: string[], newer: string): string {
  return columns
    .map((column) => `${column} = CASE WHEN ${newer} THEN excluded.${column} ELSE ${table}.${column} END`)
    .join(',\n  ');
}

const meetingDetailColumns = [
  'name',
  'event_type_uri',
  'start_time',
  'end_time',
  'location_type',
  'location',
  'join_url',
  'calendly_created_at',
  'calendly_updated_at',
  'details_version',
  'details_tiebreak',
];
const meetingDetailsNewer =
  '(excluded.details_version, excluded.details_tiebreak) > (m.details_version, m.details_tiebreak)';

// Canceled is final at Calendly, so the flag only ever goes one way and the first cancellation
// details recorded stay (COALESCE keeps them; they are NULL while the event is active).
const upsertMeetingSql = (values: string, when: string) => `
INSERT INTO meetings AS m (
  user_id, scheduled_event_uri, status,
  name, event_type_uri, start_time, end_time, location_type, location, join_url,
  calendly_created_at, calendly_updated_at, details_version, details_tiebreak,
  event_status, event_canceled_by, event_cancel_reason, event_canceler_type, event_canceled_at,
  active_invitees, counter_version)
SELECT ${values} WHERE ${when}
ON CONFLICT (user_id, scheduled_event_uri) DO UPDATE SET
  ${newerWins('m', meetingDetailColumns, meetingDetailsNewer)},
  event_status = CASE WHEN m.event_status = 'canceled' OR excluded.event_status = 'canceled' THEN 'canceled' ELSE 'active' END,
  event_canceled_by = COALESCE(m.event_canceled_by, excluded.event_canceled_by),
  event_cancel_reason = COALESCE(m.event_cancel_reason, excluded.event_cancel_reason),
  event_canceler_type = COALESCE(m.event_canceler_type, excluded.event_canceler_type),
  event_canceled_at = COALESCE(m.event_canceled_at, excluded.event_canceled_at),
  active_invitees = CASE
    WHEN excluded.counter_version IS NOT NULL AND (m.counter_version IS NULL OR excluded.counter_version > m.counter_version)
    THEN excluded.active_invitees ELSE m.active_invitees END,
  counter_version = GREATEST(m.counter_version, excluded.counter_version),
  updated_at = now()
RETURNING *`;

const inviteeDetailColumns = [
  'name',
  'email',
  'timezone',
  'answers',
  'calendly_created_at',
  'calendly_updated_at',
  'details_version',
  'details_tiebreak',
];
const inviteeDetailsNewer =
  '(excluded.details_version, excluded.details_tiebreak) > (i.details_version, i.details_tiebreak)';
const noShowColumns = ['no_show', 'no_show_uri', 'no_show_at', 'no_show_version'];
const noShowNewer = 'excluded.no_show_version > i.no_show_version';

const upsertInviteeSql = (values: string, when: string) => `
INSERT INTO invitees AS i (
  user_id, uri, meeting_id,
  name, email, timezone, answers, calendly_created_at, calendly_updated_at, details_version, details_tiebreak,
  status, canceled_by, cancel_reason, canceler_type, canceled_at, rescheduled,
  no_show, no_show_uri, no_show_at, no_show_version)
SELECT ${values} WHERE ${when}
ON CONFLICT (user_id, uri) DO UPDATE SET
  ${newerWins('i', inviteeDetailColumns, inviteeDetailsNewer)},
  ${newerWins('i', noShowColumns, noShowNewer)},
  status = CASE WHEN i.status = 'canceled' OR excluded.status = 'canceled' THEN 'canceled' ELSE 'active' END,
  canceled_by = COALESCE(i.canceled_by, excluded.canceled_by),
  cancel_reason = COALESCE(i.cancel_reason, excluded.cancel_reason),
  canceler_type = COALESCE(i.canceler_type, excluded.canceler_type),
  canceled_at = COALESCE(i.canceled_at, excluded.canceled_at),
  rescheduled = i.rescheduled OR excluded.rescheduled,
  updated_at = now()
RETURNING *`;

/** The meeting's column values, in upsertMeetingSql's order. */
function meetingValues(change: InviteeChange): unknown[] {
  const { meeting } = change;
  const cancellation = meeting.cancellation;
  return [
    change.userId,
    meeting.uri,
    // A new meeting starts active; settleStatus derives the status from what is stored.
    'active',
    meeting.name,
    meeting.eventTypeUri,
    meeting.startTime,
    meeting.endTime,
    meeting.locationType,
    meeting.location,
    meeting.joinUrl,
    meeting.calendlyCreatedAt,
    meeting.calendlyUpdatedAt,
    meeting.version,
    change.envelopeCreatedAt,
    meeting.canceled ? 'canceled' : 'active',
    cancellation?.canceledBy ?? null,
    cancellation?.reason ?? null,
    cancellation?.cancelerType ?? null,
    cancellation?.canceledAt ?? null,
    meeting.activeInvitees,
    meeting.activeInvitees === null ? null : change.envelopeCreatedAt,
  ];
}

/** The invitee's column values after user_id, uri and meeting_id, in upsertInviteeSql's order. */
function inviteeValues(change: InviteeChange): unknown[] {
  const { invitee } = change;
  const cancellation = invitee.cancellation;
  return [
    invitee.name,
    invitee.email,
    invitee.timezone,
    JSON.stringify(invitee.answers),
    invitee.calendlyCreatedAt,
    invitee.calendlyUpdatedAt,
    invitee.version,
    change.envelopeCreatedAt,
    invitee.canceled ? 'canceled' : 'active',
    cancellation?.canceledBy ?? null,
    cancellation?.reason ?? null,
    cancellation?.cancelerType ?? null,
    cancellation?.canceledAt ?? null,
    invitee.rescheduled,
    invitee.noShow.marked,
    invitee.noShow.uri,
    invitee.noShow.at,
    change.envelopeCreatedAt,
  ];
}

const claimSql = `INSERT INTO inbox (user_id, delivery_key, event_type, outcome) VALUES ($1, $2, $3, $4)
  ON CONFLICT (user_id, delivery_key) DO NOTHING`;

// What deriveMeetingStatus needs, as columns beside a meeting's (meetingRowsSql), over `invitees`
// (the table, or what a statement reads as the meeting's invitees): read with the meeting after
// this delivery's upserts, so the after-snapshot and the status cost no query of their own.
const statusInputs = (invitees: string): MeetingExtra => ({
  columns: `m.event_status AS status_event_status, m.event_canceled_by AS status_event_canceled_by,
    m.event_cancel_reason AS status_event_cancel_reason, m.event_canceler_type AS status_event_canceler_type,
    m.event_canceled_at AS status_event_canceled_at, m.active_invitees AS status_active_invitees,
    (SELECT count(*)::int FROM ${invitees} k WHERE k.user_id = m.user_id AND k.meeting_id = m.id) AS status_known,
    (SELECT count(*)::int FROM ${invitees} k
      WHERE k.user_id = m.user_id AND k.meeting_id = m.id AND k.status = 'active') AS status_active_known,
    last.canceled_by AS status_canceled_by, last.cancel_reason AS status_cancel_reason,
    last.canceler_type AS status_canceler_type, last.canceled_at AS status_canceled_at,
    m.canceled_by AS status_stored_canceled_by, m.cancel_reason AS status_stored_cancel_reason,
    m.canceler_type AS status_stored_canceler_type, m.canceled_at AS status_stored_canceled_at`,
  joins: `LEFT JOIN LATERAL (
    SELECT canceled_by, cancel_reason, canceler_type, canceled_at FROM ${invitees} k
     WHERE k.user_id = m.user_id AND k.meeting_id = m.id AND k.status = 'canceled'
     ORDER BY canceled_at DESC NULLS LAST, uri LIMIT 1) last ON true`,
});

interface StatusInputsRow {
  status_event_status: string;
  status_event_canceled_by: string | null;
  status_event_cancel_reason: string | null;
  status_event_canceler_type: string | null;
  status_event_canceled_at: Date | null;
  status_active_invitees: number | null;
  status_known: number;
  status_active_known: number;
  status_canceled_by: string | null;
  status_cancel_reason: string | null;
  status_canceler_type: string | null;
  status_canceled_at: Date | null;
  status_stored_canceled_by: string | null;
  status_stored_cancel_reason: string | null;
  status_stored_canceler_type: string | null;
  status_stored_canceled_at: Date | null;
}

/** A meeting read with its status inputs (meetingFromRows of meetingRowsSql with statusInputs). */
export type MeetingWithStatusInputs = { meeting: MeetingRecord; extra: StatusInputsRow };

function cancellationFrom(
  canceledBy: string | null,
  reason: string | null,
  cancelerType: string | null,
  canceledAt: Date | null,
): CancellationFields | null {
  if (canceledBy === null && reason === null && cancelerType === null && canceledAt === null) return null;
  return { canceledBy, reason, cancelerType, canceledAt: canceledAt?.toISOString() ?? null };
}

function statusInputsOf(row: StatusInputsRow): MeetingStatusInputs {
  return {
    eventCanceled: row.status_event_status === 'canceled',
    eventCancellation: cancellationFrom(
      row.status_event_canceled_by,
      row.status_event_cancel_reason,
      row.status_event_canceler_type,
      row.status_event_canceled_at,
    ),
    activeInviteesCounter: row.status_active_invitees,
    knownInvitees: row.status_known,
    activeKnownInvitees: row.status_active_known,
    latestInviteeCancellation: cancellationFrom(
      row.status_canceled_by,
      row.status_cancel_reason,
      row.status_canceler_type,
      row.status_canceled_at,
    ),
  };
}

/** Writes of one delivery, all on the caller's transaction. */
export const meetingWrites = {
  /** Records the delivery key; false when this user already had it (a duplicate). */
  async claimDelivery(
    client: Queryable,
    input: { userId: string; deliveryKey: string; eventType: string; outcome: 'applied' | 'ignored' },
  ): Promise<boolean> {
    const result = await client.query(
      prepared(claimSql, [input.userId, input.deliveryKey, input.eventType, input.outcome]),
    );
    return result.rowCount === 1;
  },

  /**
   * Claims the delivery's key and upserts its meeting and invitee, two statements in one round
   * trip, and answers the meeting as it was before and as the upsert left it, with its status
   * inputs; or null when the key was claimed before (a duplicate: nothing written).
   *
   * The claim takes the user's lock when the key is fresh (a duplicate takes none and waits for
   * nobody) and holds it to the commit. The upsert is a statement of its own, so its snapshot is
   * taken once the claim has its lock: `before` is the change-feed's before-snapshot, as a query
   * just before the upserts would read it under the lock; `after` reads the meeting and the
   * invitee from the upserts' own RETURNING rows and the meeting's other invitees (which the
   * statement does not touch) from the table: what a query just after it would read. Sent
   * together, the upsert runs whatever the claim found, so it writes only when the key's inbox
   * row was written by this transaction; a transaction must therefore claim a key only once.
   */
  async claimAndUpsert(
    tx: Transaction,
    change: InviteeChange,
  ): Promise<{ before: MeetingRecord | null; after: MeetingWithStatusInputs } | null> {
    const claimValues: unknown[] = [change.userId, change.deliveryKey, change.eventType, 'applied'];
    const claim = prepared(
      `WITH claim AS (${claimSql} RETURNING 1)
       SELECT ${lockUserChangesSql(change.userId, (value) => `$${claimValues.push(value)}`)} FROM claim`,
      claimValues,
    );

    const values: unknown[] = [];
    const bind = (value: unknown) => `$${values.push(value)}`;
    // Each bound once, for every part of the statement that names it.
    const userId = bind(change.userId);
    const meetingUri = bind(change.meeting.uri);
    const inviteeUri = bind(change.invitee.uri);
    const claimedHere = `EXISTS (SELECT FROM inbox WHERE user_id = ${userId} AND delivery_key = ${bind(change.deliveryKey)}
        AND xmin = pg_current_xact_id_if_assigned()::xid)`;
    const before = meetingRowsSql(userId, 'scheduled_event_uri', meetingUri, statusInputs(meetingTables.invitees));
    const meeting = upsertMeetingSql(meetingValues(change).map(bind).join(', '), claimedHere);
    const invitee = upsertInviteeSql(
      [userId, inviteeUri, '(SELECT id FROM meeting)', ...inviteeValues(change).map(bind)].join(', '),
      'EXISTS (SELECT FROM meeting)',
    );
    // The meeting's other invitees as the table has them, and this one as the upsert left it.
    // Named by the meeting, not only the user: joined to the one-row `meeting`, the planner
    // would otherwise hash-join every invitee the user ever had, once per delivery.
    const afterInvitees = `(SELECT * FROM invitees
        WHERE user_id = ${userId} AND meeting_id = (SELECT id FROM meeting) AND uri <> ${inviteeUri}
      UNION ALL SELECT * FROM invitee)`;
    const after = meetingRowsSql(userId, 'scheduled_event_uri', meetingUri, statusInputs(afterInvitees), {
      meetings: 'meeting',
      invitees: afterInvitees,
    });
    const upsert = prepared(
      `WITH before AS (${before}), meeting AS (${meeting}), invitee AS (${invitee}), after AS (${after})
       SELECT 'after' AS snapshot, after.* FROM after
       UNION ALL SELECT 'before', before.* FROM before
       ORDER BY snapshot, ${meetingRowsOrder}`,
      values,
    );

    const [claimed, upserted] = await tx.queryTogether([claim, upsert]);
    if (claimed!.rowCount !== 1) return null;
    const rows = upserted!.rows as (Record<string, unknown> & { snapshot: 'before' | 'after' })[];
    return {
      before: meetingFromRows(rows.filter((row) => row.snapshot === 'before'))?.meeting ?? null,
      after: meetingFromRows<StatusInputsRow>(rows.filter((row) => row.snapshot === 'after'))!,
    };
  },

  /** Records that `oldInviteeUri` was rescheduled to `newInviteeUri`; either may not be stored yet. */
  async linkReschedule(client: Queryable, userId: string, oldInviteeUri: string, newInviteeUri: string): Promise<void> {
    await client.query(
      `INSERT INTO reschedules (user_id, old_invitee_uri, new_invitee_uri) VALUES ($1, $2, $3)
       ON CONFLICT DO NOTHING`,
      [userId, oldInviteeUri, newInviteeUri],
    );
  },

  /**
   * Derives the meeting's status from what is stored now (after this delivery's writes: `read`,
   * or read here) and writes it when it differs from the stored one, then answers the meeting as
   * stored: most deliveries leave the status as it was, and then this costs no further query.
   */
  async settleStatus(
    client: Queryable,
    userId: string,
    meetingId: string,
    read?: MeetingWithStatusInputs,
  ): Promise<MeetingRecord> {
    read ??= (await readMeeting<StatusInputsRow>(
      client,
      userId,
      'id',
      meetingId,
      statusInputs(meetingTables.invitees),
    ))!;
    const row = read.extra;
    const status = deriveMeetingStatus(statusInputsOf(row));
    const stored: MeetingStatus = {
      status: read.meeting.status,
      cancellation: cancellationFrom(
        row.status_stored_canceled_by,
        row.status_stored_cancel_reason,
        row.status_stored_canceler_type,
        row.status_stored_canceled_at,
      ),
    };
    if (isDeepStrictEqual(status, stored)) return read.meeting;
    await meetingWrites.setStatus(client, userId, meetingId, status);
    return (await readMeeting(client, userId, 'id', meetingId))!.meeting;
  },

  async setStatus(client: Queryable, userId: string, meetingId: string, status: MeetingStatus): Promise<void> {
    const cancellation = status.cancellation;
    await client.query(
      `UPDATE meetings SET status = $3, canceled_by = $4, cancel_reason = $5, canceler_type = $6, canceled_at = $7
        WHERE user_id = $1 AND id = $2`,
      [
        userId,
        meetingId,
        status.status,
        cancellation?.canceledBy ?? null,
        cancellation?.reason ?? null,
        cancellation?.cancelerType ?? null,
        cancellation?.canceledAt ?? null,
      ],
    );
  },
};

export type MeetingWrites = typeof meetingWrites;
