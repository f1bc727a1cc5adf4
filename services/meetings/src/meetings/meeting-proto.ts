import { meetingsV1 } from '@calsync/proto';
import type { CancellationRecord, MeetingRecord } from './meeting-queries';

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

/** A meeting as the contract carries it (gRPC answers and the change feed alike). */
export function toMeeting(record: MeetingRecord): meetingsV1.Meeting {
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
