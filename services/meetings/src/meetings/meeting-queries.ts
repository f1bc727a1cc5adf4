import { pageSizeOf, prepared, type Pool, type PoolClient, type Queryable } from '@calsync/service-kit';
import { z } from 'zod';

/** A read request the caller got wrong (bad page size, cursor or window). */
export class InvalidQueryError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidQueryError';
  }
}

export interface CancellationRecord {
  canceledBy: string;
  reason: string;
  cancelerType: string;
  canceledAt: Date | null;
}

export interface InviteeRecord {
  uri: string;
  name: string;
  email: string;
  status: 'active' | 'canceled';
  timezone: string;
  answers: { question: string; answer: string; position: number }[];
  cancellation: CancellationRecord | null;
  rescheduled: boolean;
  oldInviteeUri: string;
  newInviteeUri: string;
  noShow: boolean;
  noShowAt: Date | null;
  createdAt: Date | null;
  updatedAt: Date | null;
}

export interface MeetingRecord {
  id: string;
  userId: string;
  scheduledEventUri: string;
  name: string;
  eventTypeUri: string;
  status: 'active' | 'canceled';
  startTime: Date;
  endTime: Date;
  location: { type: string; location: string; joinUrl: string };
  cancellation: CancellationRecord | null;
  invitees: InviteeRecord[];
  /** Calendly's created_at / updated_at of the scheduled event. */
  createdAt: Date | null;
  updatedAt: Date | null;
}

export interface ListQuery {
  userId: string;
  from?: Date;
  to?: Date;
  status?: 'active' | 'canceled';
  /** 0 means the default (20). */
  pageSize: number;
  cursor: string;
}

export interface MeetingQueries {
  /** The user's meetings, newest start first, one page at a time. */
  list(query: ListQuery): Promise<{ meetings: MeetingRecord[]; nextCursor: string }>;
  /** The user's meeting, or null when it does not exist or is someone else's. */
  get(userId: string, id: string): Promise<MeetingRecord | null>;
}

const pageBounds = { defaultSize: 20, maxSize: 100 };
const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const firstYear = 1;
const lastYear = 9999;
const storableYear = (date: Date) => date.getUTCFullYear() >= firstYear && date.getUTCFullYear() <= lastYear;

// Exactly what encodeCursor writes: every field present, valid and in range, nothing else.
const cursorSchema = z.strictObject({
  t: z.iso
    .datetime({ precision: 6, error: 'must be a UTC time like 2026-01-31T09:00:00.000000Z' })
    .refine((value) => storableYear(new Date(value)), `must be in the years ${firstYear} to ${lastYear}`),
  id: z.guid({ error: 'must be a meeting id (a UUID)' }),
});

// Microsecond text, so a cursor lands exactly between two meetings however close their starts.
const startKey = `to_char(m.start_time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;

interface MeetingRow {
  id: string;
  user_id: string;
  scheduled_event_uri: string;
  name: string;
  event_type_uri: string;
  status: 'active' | 'canceled';
  start_time: Date;
  end_time: Date;
  location_type: string;
  location: string;
  join_url: string;
  canceled_by: string | null;
  cancel_reason: string | null;
  canceler_type: string | null;
  canceled_at: Date | null;
  calendly_created_at: Date | null;
  calendly_updated_at: Date | null;
  start_key: string;
}

interface InviteeRow {
  meeting_id: string;
  uri: string;
  name: string;
  email: string;
  status: 'active' | 'canceled';
  timezone: string;
  answers: { question: string; answer: string; position: number }[];
  canceled_by: string | null;
  cancel_reason: string | null;
  canceler_type: string | null;
  canceled_at: Date | null;
  rescheduled: boolean;
  old_invitee_uri: string | null;
  new_invitee_uri: string | null;
  no_show: boolean;
  no_show_at: Date | null;
  calendly_created_at: Date | null;
  calendly_updated_at: Date | null;
}

// Over `meetings m`.
const meetingColumns = `m.id, m.user_id, m.scheduled_event_uri, m.name, m.event_type_uri, m.status, m.start_time,
  m.end_time, m.location_type, m.location, m.join_url, m.canceled_by, m.cancel_reason, m.canceler_type,
  m.canceled_at, m.calendly_created_at, m.calendly_updated_at, ${startKey} AS start_key`;

// Over `invitees i`: each InviteeRow field and the expression that reads it.
const inviteeFields: Record<keyof InviteeRow, string> = {
  meeting_id: 'i.meeting_id',
  uri: 'i.uri',
  name: 'i.name',
  email: 'i.email',
  status: 'i.status',
  timezone: 'i.timezone',
  answers: 'i.answers',
  canceled_by: 'i.canceled_by',
  cancel_reason: 'i.cancel_reason',
  canceler_type: 'i.canceler_type',
  canceled_at: 'i.canceled_at',
  rescheduled: 'i.rescheduled',
  no_show: 'i.no_show',
  no_show_at: 'i.no_show_at',
  calendly_created_at: 'i.calendly_created_at',
  calendly_updated_at: 'i.calendly_updated_at',
  old_invitee_uri: `(SELECT r.old_invitee_uri FROM reschedules r
    WHERE r.user_id = i.user_id AND r.new_invitee_uri = i.uri
    ORDER BY r.created_at, r.old_invitee_uri LIMIT 1)`,
  new_invitee_uri: `(SELECT r.new_invitee_uri FROM reschedules r
    WHERE r.user_id = i.user_id AND r.old_invitee_uri = i.uri
    ORDER BY r.created_at, r.new_invitee_uri LIMIT 1)`,
};
const inviteeNames = Object.keys(inviteeFields) as (keyof InviteeRow)[];
// Beside the meeting's columns (one query for a meeting and its invitees) an invitee's are prefixed.
const inviteePrefix = 'invitee_';
const inviteeColumns = (prefix: string) =>
  inviteeNames.map((name) => `${inviteeFields[name]} AS ${prefix}${name}`).join(',\n  ');
/** An invitee's columns read with inviteeColumns(inviteePrefix), named as InviteeRow names them. */
function unprefixed(row: Record<string, unknown>): InviteeRow {
  const invitee: Record<string, unknown> = {};
  for (const name of inviteeNames) invitee[name] = row[`${inviteePrefix}${name}`];
  return invitee as unknown as InviteeRow;
}

function cancellationOf(row: {
  canceled_by: string | null;
  cancel_reason: string | null;
  canceler_type: string | null;
  canceled_at: Date | null;
  status: string;
}): CancellationRecord | null {
  if (row.status !== 'canceled') return null;
  return {
    canceledBy: row.canceled_by ?? '',
    reason: row.cancel_reason ?? '',
    cancelerType: row.canceler_type ?? '',
    canceledAt: row.canceled_at,
  };
}

function inviteeOf(row: InviteeRow): InviteeRecord {
  return {
    uri: row.uri,
    name: row.name,
    email: row.email,
    status: row.status,
    timezone: row.timezone,
    answers: row.answers,
    cancellation: cancellationOf(row),
    rescheduled: row.rescheduled || row.new_invitee_uri !== null,
    oldInviteeUri: row.old_invitee_uri ?? '',
    newInviteeUri: row.new_invitee_uri ?? '',
    noShow: row.no_show,
    noShowAt: row.no_show ? row.no_show_at : null,
    createdAt: row.calendly_created_at,
    updatedAt: row.calendly_updated_at,
  };
}

function meetingOf(row: MeetingRow, invitees: InviteeRecord[]): MeetingRecord {
  return {
    id: row.id,
    userId: row.user_id,
    scheduledEventUri: row.scheduled_event_uri,
    name: row.name,
    eventTypeUri: row.event_type_uri,
    status: row.status,
    startTime: row.start_time,
    endTime: row.end_time,
    location: { type: row.location_type, location: row.location, joinUrl: row.join_url },
    cancellation: cancellationOf(row),
    invitees,
    createdAt: row.calendly_created_at,
    updatedAt: row.calendly_updated_at,
  };
}

function encodeCursor(startKeyValue: string, id: string): string {
  return Buffer.from(JSON.stringify({ t: startKeyValue, id })).toString('base64url');
}

function decodeCursor(cursor: string): { t: string; id: string } {
  let value: unknown;
  try {
    if (!/^[A-Za-z0-9_-]+$/.test(cursor)) throw new Error('not base64url');
    value = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw new InvalidQueryError('"cursor" is not one this service handed out');
  }
  const parsed = cursorSchema.safeParse(value);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  if (issue.code === 'unrecognized_keys') {
    throw new InvalidQueryError(`"cursor" has an unknown field "${issue.keys[0]}"`);
  }
  if (issue.path.length === 0) throw new InvalidQueryError('"cursor" is not one this service handed out');
  throw new InvalidQueryError(`"cursor" field "${String(issue.path[0])}" ${issue.message}`);
}

/** A time bound of the window: a real date in the years Postgres stores. */
function checkBound(name: 'from' | 'to', date: Date | undefined): void {
  if (date !== undefined && (Number.isNaN(date.getTime()) || !storableYear(date))) {
    throw new InvalidQueryError(`"${name}" must be a time in the years ${firstYear} to ${lastYear}`);
  }
}

/** More of a meeting's row to read in the same query: SQL over `meetings m` (aliases unique). */
export interface MeetingExtra {
  columns: string;
  /** LATERAL joins of one row per meeting the columns may read from. */
  joins?: string;
}

/** What meetingRowsSql reads from: the tables, or relations with their columns (a statement's RETURNING rows). */
export interface MeetingSources {
  meetings: string;
  invitees: string;
}

export const meetingTables: MeetingSources = { meetings: 'meetings', invitees: 'invitees' };

/**
 * The SELECT of the user's meeting `m.<key> = valueSql` and its invitees: a row per invitee (one
 * with no invitee columns when it has none), the meeting's columns and `extra`'s on each. For a
 * statement that reads it as a CTE; order its rows by meetingRowsOrder and read them with
 * meetingFromRows.
 */
export function meetingRowsSql(
  userIdSql: string,
  key: 'id' | 'scheduled_event_uri',
  valueSql: string,
  extra?: MeetingExtra,
  from: MeetingSources = meetingTables,
): string {
  return `SELECT ${meetingColumns},
       ${inviteeColumns(inviteePrefix)}${extra ? `,\n       ${extra.columns}` : ''}
       FROM ${from.meetings} m
       ${extra?.joins ?? ''}
       LEFT JOIN ${from.invitees} i ON i.user_id = m.user_id AND i.meeting_id = m.id
      WHERE m.user_id = ${userIdSql} AND m.${key} = ${valueSql}`;
}

/** The order of meetingRowsSql's rows, by its output columns: the invitees' order everywhere. */
export const meetingRowsOrder = `${inviteePrefix}calendly_created_at NULLS LAST, ${inviteePrefix}uri`;

/** The meeting of meetingRowsSql's rows (in meetingRowsOrder), with `extra`'s columns from its first; null for none. */
export function meetingFromRows<Extra extends object = object>(
  rows: Record<string, unknown>[],
): { meeting: MeetingRecord; extra: Extra } | null {
  const first = rows[0] as (MeetingRow & Extra) | undefined;
  if (!first) return null;
  const invitees = rows.filter((row) => row[`${inviteePrefix}uri`] !== null).map((row) => inviteeOf(unprefixed(row)));
  return { meeting: meetingOf(first, invitees), extra: first };
}

/** The user's meeting and its invitees (and `extra`'s columns) in one query; null when the user has no such meeting. */
export async function readMeeting<Extra extends object = object>(
  db: Queryable,
  userId: string,
  key: 'id' | 'scheduled_event_uri',
  value: string,
  extra?: MeetingExtra,
): Promise<{ meeting: MeetingRecord; extra: Extra } | null> {
  const { rows } = await db.query<Record<string, unknown>>(
    prepared(`${meetingRowsSql('$1', key, '$2', extra)} ORDER BY ${meetingRowsOrder}`, [userId, value]),
  );
  return meetingFromRows<Extra>(rows);
}

/** Reads through the pool, or through a transaction's client to see its own writes. */
export function createMeetingQueries(deps: { pool: Pool | PoolClient }): MeetingQueries {
  const pool = deps.pool as Pool;

  async function inviteesOf(userId: string, meetingIds: string[]): Promise<Map<string, InviteeRecord[]>> {
    const byMeeting = new Map<string, InviteeRecord[]>(meetingIds.map((id) => [id, []]));
    if (meetingIds.length === 0) return byMeeting;
    const { rows } = await pool.query<InviteeRow>(
      `SELECT ${inviteeColumns('')} FROM invitees i
        WHERE i.user_id = $1 AND i.meeting_id = ANY($2::uuid[])
        ORDER BY i.calendly_created_at NULLS LAST, i.uri`,
      [userId, meetingIds],
    );
    for (const row of rows) byMeeting.get(row.meeting_id)?.push(inviteeOf(row));
    return byMeeting;
  }

  async function withInvitees(userId: string, rows: MeetingRow[]): Promise<MeetingRecord[]> {
    const invitees = await inviteesOf(
      userId,
      rows.map((row) => row.id),
    );
    return rows.map((row) => meetingOf(row, invitees.get(row.id) ?? []));
  }

  return {
    async list(query) {
      if (!query.userId) throw new InvalidQueryError('user_id is required');
      const pageSize = pageSizeOf(query.pageSize, pageBounds, (message) => new InvalidQueryError(message));
      checkBound('from', query.from);
      checkBound('to', query.to);
      if (query.from && query.to && query.from.getTime() >= query.to.getTime())
        throw new InvalidQueryError('from must be before to');

      const conditions = ['user_id = $1'];
      const values: unknown[] = [query.userId];
      const bind = (value: unknown) => {
        values.push(value);
        return `$${values.length}`;
      };
      if (query.from) conditions.push(`start_time >= ${bind(query.from)}`);
      if (query.to) conditions.push(`start_time < ${bind(query.to)}`);
      if (query.status) conditions.push(`status = ${bind(query.status)}`);
      if (query.cursor) {
        const cursor = decodeCursor(query.cursor);
        conditions.push(`(start_time, id) < (${bind(cursor.t)}::timestamptz, ${bind(cursor.id)}::uuid)`);
      }
      const { rows } = await pool.query<MeetingRow>(
        `SELECT ${meetingColumns} FROM meetings m WHERE ${conditions.join(' AND ')}
          ORDER BY start_time DESC, id DESC LIMIT ${bind(pageSize + 1)}`,
        values,
      );
      const page = rows.slice(0, pageSize);
      const last = page[page.length - 1];
      return {
        meetings: await withInvitees(query.userId, page),
        nextCursor: rows.length > pageSize && last ? encodeCursor(last.start_key, last.id) : '',
      };
    },

    async get(userId, id) {
      if (!userId) throw new InvalidQueryError('user_id is required');
      if (!uuidPattern.test(id)) throw new InvalidQueryError('id is not a meeting id');
      return (await readMeeting(pool, userId, 'id', id))?.meeting ?? null;
    },
  };
}
