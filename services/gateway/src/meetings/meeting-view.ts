import { meetingsV1 } from '@calsync/proto';
import { HttpError } from '../http/http-error';

const iso = (date: Date | undefined) => (date ? date.toISOString() : null);

const meetingStatuses: Partial<Record<meetingsV1.MeetingStatus, string>> = {
  [meetingsV1.MeetingStatus.MEETING_STATUS_ACTIVE]: 'active',
  [meetingsV1.MeetingStatus.MEETING_STATUS_CANCELED]: 'canceled',
};
const inviteeStatuses: Partial<Record<meetingsV1.InviteeStatus, string>> = {
  [meetingsV1.InviteeStatus.INVITEE_STATUS_ACTIVE]: 'active',
  [meetingsV1.InviteeStatus.INVITEE_STATUS_CANCELED]: 'canceled',
};
const statusFilters: Record<string, meetingsV1.MeetingStatus> = {
  active: meetingsV1.MeetingStatus.MEETING_STATUS_ACTIVE,
  canceled: meetingsV1.MeetingStatus.MEETING_STATUS_CANCELED,
};

function cancellationView(cancellation: meetingsV1.Cancellation | undefined) {
  if (!cancellation) return null;
  return {
    canceledBy: cancellation.canceledBy,
    reason: cancellation.reason,
    cancelerType: cancellation.cancelerType,
    canceledAt: iso(cancellation.canceledAt),
  };
}

/** A meeting as the user API shows it (camelCase JSON, ISO timestamps, status names). */
export function meetingView(meeting: meetingsV1.Meeting) {
  return {
    id: meeting.id,
    scheduledEventUri: meeting.scheduledEventUri,
    name: meeting.name,
    eventTypeUri: meeting.eventTypeUri,
    status: meetingStatuses[meeting.status] ?? 'unknown',
    startTime: iso(meeting.startTime),
    endTime: iso(meeting.endTime),
    location: meeting.location
      ? { type: meeting.location.type, location: meeting.location.location, joinUrl: meeting.location.joinUrl }
      : null,
    cancellation: cancellationView(meeting.cancellation),
    invitees: meeting.invitees.map((invitee) => ({
      uri: invitee.uri,
      name: invitee.name,
      email: invitee.email,
      status: inviteeStatuses[invitee.status] ?? 'unknown',
      timezone: invitee.timezone,
      answers: invitee.answers.map(({ question, answer, position }) => ({ question, answer, position })),
      cancellation: cancellationView(invitee.cancellation),
      rescheduled: invitee.rescheduled,
      oldInviteeUri: invitee.oldInviteeUri || null,
      newInviteeUri: invitee.newInviteeUri || null,
      noShow: invitee.noShow,
      noShowAt: iso(invitee.noShowAt),
      createdAt: iso(invitee.createdAt),
      updatedAt: iso(invitee.updatedAt),
    })),
    createdAt: iso(meeting.createdAt),
    updatedAt: iso(meeting.updatedAt),
  };
}

const isoTimestamp = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?)?$/;

/** The ListMeetings filters of `?from&to&status&limit&cursor` (for the given user); 400 on a bad value. */
export function listQuery(
  userId: string,
  query: Record<string, string | string[] | undefined>,
): meetingsV1.ListMeetingsRequest {
  const single = (name: string): string | undefined => {
    const value = query[name];
    if (Array.isArray(value)) throw new HttpError(400, 'invalid_request', `"${name}" may be given once`);
    return value === undefined || value === '' ? undefined : value;
  };
  const time = (name: string): Date | undefined => {
    const value = single(name);
    if (value === undefined) return undefined;
    const date = new Date(value);
    if (!isoTimestamp.test(value) || Number.isNaN(date.getTime())) {
      throw new HttpError(400, 'invalid_request', `"${name}" must be an ISO 8601 timestamp`);
    }
    return date;
  };
  const from = time('from');
  const to = time('to');
  if (from && to && from.getTime() >= to.getTime()) {
    throw new HttpError(400, 'invalid_request', '"from" must be before "to"');
  }
  const statusName = single('status');
  const status =
    statusName === undefined ? meetingsV1.MeetingStatus.MEETING_STATUS_UNSPECIFIED : statusFilters[statusName];
  if (status === undefined) throw new HttpError(400, 'invalid_request', '"status" must be active or canceled');
  const limit = single('limit');
  if (limit !== undefined && !/^(100|[1-9]\d?)$/.test(limit)) {
    throw new HttpError(400, 'invalid_request', '"limit" must be a whole number from 1 to 100');
  }
  const cursor = single('cursor') ?? '';
  if (cursor.length > 1024) throw new HttpError(400, 'invalid_request', '"cursor" is not one this API gave out');
  return {
    userId,
    ...(from ? { from } : {}),
    ...(to ? { to } : {}),
    status,
    pageSize: limit === undefined ? 0 : Number(limit),
    cursor,
  };
}
