import { randomUUID } from 'node:crypto';
import type { WebhookEvent } from '../webhooks';

// Builders of webhook bodies shaped the way Calendly documents them, for tests and benches.
// The simulator keeps its own model on purpose; these are for code that needs a body without
// booking through it.

export interface Host {
  uri: string;
  email: string;
  name: string;
}

export interface ScheduledEventFields {
  uri: string;
  name: string;
  status: 'active' | 'canceled';
  startTime: string;
  endTime: string;
  eventTypeUri: string;
  location: Record<string, string>;
  counter: { total: number; active: number; limit: number };
  hosts: Host[];
  cancellation?: Record<string, string> | null;
  createdAt: string;
  updatedAt: string;
}

export interface InviteeFields {
  uri: string;
  name: string;
  email: string;
  timezone: string;
  status: 'active' | 'canceled';
  answers: { question: string; answer: string; position: number }[];
  rescheduled: boolean;
  oldInvitee: string | null;
  newInvitee: string | null;
  noShow: { uri: string; created_at: string } | null;
  cancellation?: Record<string, string> | null;
  createdAt: string;
  updatedAt: string;
}

/** The `scheduled_event` embedded in an invitee payload. */
export function scheduledEventResource(event: ScheduledEventFields) {
  return {
    uri: event.uri,
    name: event.name,
    status: event.status,
    start_time: event.startTime,
    end_time: event.endTime,
    event_type: event.eventTypeUri,
    location: event.location,
    invitees_counter: event.counter,
    created_at: event.createdAt,
    updated_at: event.updatedAt,
    event_memberships: event.hosts.map((host) => ({ user: host.uri, user_email: host.email, user_name: host.name })),
    event_guests: [],
    ...(event.cancellation ? { cancellation: event.cancellation } : {}),
  };
}

/** The payload of invitee.* and invitee_no_show.* deliveries: the invitee with its event embedded. */
export function inviteeResource(invitee: InviteeFields, event: ScheduledEventFields) {
  const [first, ...rest] = invitee.name.split(' ');
  const uuid = invitee.uri.split('/').at(-1) ?? randomUUID();
  return {
    uri: invitee.uri,
    email: invitee.email,
    name: invitee.name,
    first_name: first ?? null,
    last_name: rest.join(' ') || null,
    status: invitee.status,
    timezone: invitee.timezone,
    event: event.uri,
    questions_and_answers: invitee.answers,
    tracking: {
      utm_campaign: null,
      utm_source: null,
      utm_medium: null,
      utm_content: null,
      utm_term: null,
      salesforce_uuid: null,
    },
    rescheduled: invitee.rescheduled,
    old_invitee: invitee.oldInvitee,
    new_invitee: invitee.newInvitee,
    cancel_url: `https://calendly.com/cancellations/${uuid}`,
    reschedule_url: `https://calendly.com/reschedulings/${uuid}`,
    routing_form_submission: null,
    payment: null,
    no_show: invitee.noShow,
    reconfirmation: null,
    scheduling_method: null,
    invitee_scheduled_by: null,
    ...(invitee.cancellation ? { cancellation: invitee.cancellation } : {}),
    created_at: invitee.createdAt,
    updated_at: invitee.updatedAt,
    scheduled_event: scheduledEventResource(event),
  };
}

/** The envelope Calendly POSTs: `{event, created_at, created_by, payload}`. */
export function webhookEnvelope(
  event: WebhookEvent | (string & {}),
  createdAt: string,
  createdBy: string,
  payload: unknown,
) {
  return { event, created_at: createdAt, created_by: createdBy, payload };
}

/**
 * A realistic invitee.created body for a one-on-one booking hosted by `host` (about 2 KB, like
 * Calendly's), as raw bytes ready to sign.
 */
export function inviteeCreatedBody(host: Host, options: { at?: string; start?: string } = {}): Buffer {
  const at = options.at ?? new Date().toISOString();
  const start = Date.parse(options.start ?? '2031-01-01T10:00:00.000Z');
  const eventUuid = randomUUID();
  const event: ScheduledEventFields = {
    uri: `https://api.calendly.com/scheduled_events/${eventUuid}`,
    name: '30 Minute Meeting',
    status: 'active',
    startTime: new Date(start).toISOString(),
    endTime: new Date(start + 30 * 60_000).toISOString(),
    eventTypeUri: 'https://api.calendly.com/event_types/BENCH',
    location: { type: 'zoom', join_url: `https://zoom.example/j/${eventUuid.slice(0, 8)}`, status: 'pushed' },
    counter: { total: 1, active: 1, limit: 1 },
    hosts: [host],
    createdAt: at,
    updatedAt: at,
  };
  const inviteeUuid = randomUUID();
  const invitee: InviteeFields = {
    uri: `${event.uri}/invitees/${inviteeUuid}`,
    name: `Invitee ${inviteeUuid.slice(0, 8)}`,
    email: `invitee-${inviteeUuid.slice(0, 8)}@example.test`,
    timezone: 'Europe/Paris',
    status: 'active',
    answers: [{ question: 'What would you like to discuss?', answer: 'The quarterly numbers.', position: 0 }],
    rescheduled: false,
    oldInvitee: null,
    newInvitee: null,
    noShow: null,
    createdAt: at,
    updatedAt: at,
  };
  return Buffer.from(JSON.stringify(webhookEnvelope('invitee.created', at, host.uri, inviteeResource(invitee, event))));
}
