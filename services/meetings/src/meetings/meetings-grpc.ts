import { meetingsV1 } from '@calsync/proto';
import { bindService, GrpcError, GrpcStatus, type Logger, type ServiceBinding } from '@calsync/service-kit';
import { InvalidQueryError, type CancellationRecord, type MeetingQueries, type MeetingRecord } from './meeting-queries';

const { MeetingStatus, InviteeStatus } = meetingsV1;

function toCancellation(value: CancellationRecord | null): meetingsV1.Cancellation | undefined {
  if (!value) return undefined;
  return {
    canceledBy: value.canceledBy,
    reason: value.reason,
    cancelerType: value.cancelerType,
    canceledAt: value.canceledAt ?? undefined,
  };
}

function toMeeting(record: MeetingRecord): meetingsV1.Meeting {
  return {
    id: record.id,
    userId: record.userId,
    scheduledEventUri: record.scheduledEventUri,
    name: record.name,
    eventTypeUri: record.eventTypeUri,
    status: record.status === 'canceled' ? MeetingStatus.MEETING_STATUS_CANCELED : MeetingStatus.MEETING_STATUS_ACTIVE,
    startTime: record.startTime,
    endTime: record.endTime,
    location: record.location,
    cancellation: toCancellation(record.cancellation),
    invitees: record.invitees.map((invitee) => ({
      uri: invitee.uri,
      name: invitee.name,
      email: invitee.email,
      status:
        invitee.status === 'canceled' ? InviteeStatus.INVITEE_STATUS_CANCELED : InviteeStatus.INVITEE_STATUS_ACTIVE,
      timezone: invitee.timezone,
      answers: invitee.answers,
      cancellation: toCancellation(invitee.cancellation),
      rescheduled: invitee.rescheduled,
      oldInviteeUri: invitee.oldInviteeUri,
      newInviteeUri: invitee.newInviteeUri,
      noShow: invitee.noShow,
      noShowAt: invitee.noShowAt ?? undefined,
      createdAt: invitee.createdAt ?? undefined,
      updatedAt: invitee.updatedAt ?? undefined,
    })),
    createdAt: record.createdAt ?? undefined,
    updatedAt: record.updatedAt ?? undefined,
  };
}

function statusFilter(status: meetingsV1.MeetingStatus): 'active' | 'canceled' | undefined {
  switch (status) {
    case MeetingStatus.MEETING_STATUS_UNSPECIFIED:
      return undefined;
    case MeetingStatus.MEETING_STATUS_ACTIVE:
      return 'active';
    case MeetingStatus.MEETING_STATUS_CANCELED:
      return 'canceled';
    default:
      throw new GrpcError(GrpcStatus.INVALID_ARGUMENT, 'status is not a known meeting status');
  }
}

async function answering<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (error instanceof InvalidQueryError) throw new GrpcError(GrpcStatus.INVALID_ARGUMENT, error.message);
    throw error;
  }
}

/** MeetingsService over gRPC: a thin adapter onto the queries, every call scoped by user_id. */
export function meetingsGrpcService(deps: { queries: MeetingQueries; log: Logger }): ServiceBinding {
  const { queries } = deps;
  return bindService(
    'calsync.meetings.v1.MeetingsService',
    meetingsV1.MeetingsServiceService,
    {
      listMeetings: (request) =>
        answering(async () => {
          const page = await queries.list({
            userId: request.userId,
            from: request.from,
            to: request.to,
            status: statusFilter(request.status),
            pageSize: request.pageSize,
            cursor: request.cursor,
          });
          return { meetings: page.meetings.map(toMeeting), nextCursor: page.nextCursor };
        }),
      getMeeting: (request) =>
        answering(async () => {
          const meeting = await queries.get(request.userId, request.id);
          // Someone else's meeting answers exactly like a missing one.
          if (!meeting) throw new GrpcError(GrpcStatus.NOT_FOUND, 'meeting not found');
          return { meeting: toMeeting(meeting) };
        }),
    },
    deps.log,
  );
}
