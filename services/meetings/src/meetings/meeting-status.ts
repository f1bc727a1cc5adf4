import type { CancellationFields } from './calendly-payload';

export interface MeetingStatusInputs {
  /** Calendly said the scheduled event itself is canceled (final). */
  eventCanceled: boolean;
  eventCancellation: CancellationFields | null;
  /** invitees_counter.active from the newest envelope that carried it; null when none did. */
  activeInviteesCounter: number | null;
  knownInvitees: number;
  activeKnownInvitees: number;
  /** The most recent cancellation among this user's canceled invitees of the meeting. */
  latestInviteeCancellation: CancellationFields | null;
}

export interface MeetingStatus {
  status: 'active' | 'canceled';
  cancellation: CancellationFields | null;
}

/**
 * A meeting is canceled when Calendly canceled the scheduled event, or when its last active
 * invitee canceled: none of the invitees we know is active and Calendly's newest counter (if it
 * sent one) agrees. The counter keeps a group event active while another invitee's booking is
 * still on its way to us.
 */
export function deriveMeetingStatus(inputs: MeetingStatusInputs): MeetingStatus {
  if (inputs.eventCanceled)
    return { status: 'canceled', cancellation: inputs.eventCancellation ?? inputs.latestInviteeCancellation };
  const lastInviteeCanceled =
    inputs.knownInvitees > 0 &&
    inputs.activeKnownInvitees === 0 &&
    (inputs.activeInviteesCounter === null || inputs.activeInviteesCounter === 0);
  if (lastInviteeCanceled) return { status: 'canceled', cancellation: inputs.latestInviteeCancellation };
  return { status: 'active', cancellation: null };
}
