import { meetingsV1 } from '@calsync/proto';
import { z } from 'zod';
import { cursorParameter, limitParameter, parseQueryParameters } from '../http/query-parameters';

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

// A date, or a date-time with seconds and Z or an offset, every field in range (no February 30th,
// no hour 24), and a year Postgres can store.
const timestamp = z
  .union([z.iso.date(), z.iso.datetime({ offset: true })], {
    error: 'must be an ISO 8601 date or date-time, e.g. 2026-01-31 or 2026-01-31T09:00:00Z',
  })
  .transform((value) => new Date(value))
  .refine((date) => date.getUTCFullYear() >= 1 && date.getUTCFullYear() <= 9999, 'must be in the years 1 to 9999');

const listParameters = z
  .strictObject({
    from: timestamp.optional(),
    to: timestamp.optional(),
    status: z.enum(['active', 'canceled'], { error: 'must be active or canceled' }).optional(),
    limit: limitParameter(100),
    cursor: cursorParameter,
  })
  .refine(({ from, to }) => !from || !to || from.getTime() < to.getTime(), {
    path: ['from'],
    message: 'must be before "to"',
  });

/** The ListMeetings filters of `?from&to&status&limit&cursor` (for the given user); 400 naming a bad parameter. */
export function listQuery(
  userId: string,
  query: Record<string, string | string[] | undefined>,
): meetingsV1.ListMeetingsRequest {
  const { from, to, status, limit, cursor } = parseQueryParameters(listParameters, query, [
    'from',
    'to',
    'status',
    'limit',
    'cursor',
  ]);
  return {
    userId,
    ...(from ? { from } : {}),
    ...(to ? { to } : {}),
    status: status ? statusFilters[status] : meetingsV1.MeetingStatus.MEETING_STATUS_UNSPECIFIED,
    pageSize: limit ?? 0,
    cursor: cursor ?? '',
  };
}

const changeKinds: Partial<Record<meetingsV1.MeetingChangeKind, string>> = {
  [meetingsV1.MeetingChangeKind.MEETING_CHANGE_KIND_CREATED]: 'created',
  [meetingsV1.MeetingChangeKind.MEETING_CHANGE_KIND_UPDATED]: 'updated',
  [meetingsV1.MeetingChangeKind.MEETING_CHANGE_KIND_CANCELED]: 'canceled',
  [meetingsV1.MeetingChangeKind.MEETING_CHANGE_KIND_RESCHEDULED]: 'rescheduled',
  [meetingsV1.MeetingChangeKind.MEETING_CHANGE_KIND_NO_SHOW]: 'no_show',
  [meetingsV1.MeetingChangeKind.MEETING_CHANGE_KIND_REMOVED]: 'removed',
};

/** A change-feed event as the user API shows it: what happened, and the meeting after it (null when removed). */
export function meetingChangeView(change: meetingsV1.MeetingChanged) {
  return {
    changeId: change.changeId,
    kind: changeKinds[change.kind] ?? 'unknown',
    meetingId: change.meetingId,
    scheduledEventUri: change.scheduledEventUri,
    changedAt: iso(change.changedAt),
    meeting: change.meeting ? meetingView(change.meeting) : null,
  };
}
