import { calendlyTime } from '../http/clock';
import type { SimUser } from '../users/user-directory';

export interface Cancellation {
  canceledBy: string;
  reason: string | null;
  cancelerType: 'host' | 'invitee';
  createdAt: number;
}

export interface EventType {
  uuid: string;
  uri: string;
  name: string;
  slug: string;
  durationMinutes: number;
  host: SimUser;
  createdAt: number;
}

export interface ScheduledEvent {
  uuid: string;
  uri: string;
  name: string;
  host: SimUser;
  eventType: EventType;
  startMs: number;
  endMs: number;
  location: Record<string, unknown>;
  status: 'active' | 'canceled';
  limit: number;
  limitExplicit: boolean;
  invitees: Invitee[];
  cancellation: Cancellation | null;
  createdAt: number;
  updatedAt: number;
  seq: number;
}

export interface QuestionAndAnswer {
  question: string;
  answer: string;
  position: number;
}

export interface Invitee {
  uuid: string;
  uri: string;
  event: ScheduledEvent;
  name: string;
  email: string;
  firstName: string | null;
  lastName: string | null;
  timezone: string;
  questionsAndAnswers: QuestionAndAnswer[];
  tracking: Record<string, string | null>;
  status: 'active' | 'canceled';
  rescheduled: boolean;
  oldInvitee: string | null;
  newInvitee: string | null;
  noShow: { uuid: string; uri: string; createdAt: number } | null;
  cancellation: Cancellation | null;
  createdAt: number;
  updatedAt: number;
  seq: number;
}

const cancellationResource = (cancellation: Cancellation) => ({
  canceled_by: cancellation.canceledBy,
  reason: cancellation.reason,
  canceler_type: cancellation.cancelerType,
  created_at: calendlyTime(cancellation.createdAt),
});

/** `GET /scheduled_events/{uuid}`'s resource, also embedded in invitee webhooks. */
export function scheduledEventResource(event: ScheduledEvent) {
  const active = event.invitees.filter((invitee) => invitee.status === 'active').length;
  return {
    uri: event.uri,
    name: event.name,
    meeting_notes_plain: null,
    meeting_notes_html: null,
    status: event.status,
    start_time: calendlyTime(event.startMs),
    end_time: calendlyTime(event.endMs),
    event_type: event.eventType.uri,
    location: event.location,
    invitees_counter: { total: event.invitees.length, active, limit: event.limit },
    created_at: calendlyTime(event.createdAt),
    updated_at: calendlyTime(event.updatedAt),
    event_memberships: [{ user: event.host.uri, user_email: event.host.email, user_name: event.host.name }],
    event_guests: [],
    ...(event.cancellation ? { cancellation: cancellationResource(event.cancellation) } : {}),
  };
}

/** `GET /scheduled_events/{uuid}/invitees/{uuid}`'s resource. */
export function inviteeResource(invitee: Invitee, baseUrl: string) {
  return {
    uri: invitee.uri,
    email: invitee.email,
    name: invitee.name,
    first_name: invitee.firstName,
    last_name: invitee.lastName,
    status: invitee.status,
    timezone: invitee.timezone,
    event: invitee.event.uri,
    questions_and_answers: invitee.questionsAndAnswers,
    tracking: invitee.tracking,
    text_reminder_number: null,
    rescheduled: invitee.rescheduled,
    old_invitee: invitee.oldInvitee,
    new_invitee: invitee.newInvitee,
    cancel_url: `${baseUrl}/cancellations/${invitee.uuid}`,
    reschedule_url: `${baseUrl}/reschedulings/${invitee.uuid}`,
    routing_form_submission: null,
    payment: null,
    no_show: invitee.noShow ? { uri: invitee.noShow.uri, created_at: calendlyTime(invitee.noShow.createdAt) } : null,
    reconfirmation: null,
    scheduling_method: null,
    invitee_scheduled_by: null,
    ...(invitee.cancellation ? { cancellation: cancellationResource(invitee.cancellation) } : {}),
    created_at: calendlyTime(invitee.createdAt),
    updated_at: calendlyTime(invitee.updatedAt),
  };
}

/** The `payload` of invitee.* and invitee_no_show.* webhooks: the invitee with its scheduled event embedded. */
export function inviteeWebhookPayload(invitee: Invitee, baseUrl: string) {
  return { ...inviteeResource(invitee, baseUrl), scheduled_event: scheduledEventResource(invitee.event) };
}

/** `GET /event_types/{uuid}`'s resource. */
export function eventTypeResource(eventType: EventType, baseUrl: string) {
  return {
    uri: eventType.uri,
    name: eventType.name,
    active: true,
    slug: eventType.slug,
    scheduling_url: `${baseUrl}/${eventType.host.slug}/${eventType.slug}`,
    duration: eventType.durationMinutes,
    kind: 'solo',
    pooling_type: null,
    type: 'StandardEventType',
    color: '#0069ff',
    created_at: calendlyTime(eventType.createdAt),
    updated_at: calendlyTime(eventType.createdAt),
    profile: { type: 'User', name: eventType.host.name, owner: eventType.host.uri },
  };
}
