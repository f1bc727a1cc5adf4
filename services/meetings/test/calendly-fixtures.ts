import { randomUUID } from 'node:crypto';
import { deliveryKeyOf as contractDeliveryKeyOf } from '@calsync/calendly-client';
import {
  inviteeResource,
  webhookEnvelope,
  type InviteeFields,
  type ScheduledEventFields,
} from '@calsync/calendly-client/testing';
import { eventsV1 } from '@calsync/proto';

// A small model of one Calendly account that produces webhook bodies as shared/CALENDLY.md
// describes them (envelope, invitee payload with its scheduled_event snapshot, reschedule
// halves, no-shows), each stamped with Calendly's microsecond timestamps from a test clock.

const api = 'https://api.calendly.com';

/** One webhook delivery as Calendly would POST it. */
export interface Delivery {
  eventType: string;
  createdAt: string;
  /** The invitee (or no-show) URI the delivery is about. */
  subjectUri: string;
  body: Buffer;
}

interface EventState {
  uuid: string;
  uri: string;
  name: string;
  eventTypeUri: string;
  status: 'active' | 'canceled';
  startTime: string;
  endTime: string;
  location: Record<string, string>;
  limit: number;
  cancellation: Record<string, string> | null;
  createdAt: string;
  updatedAt: string;
  invitees: InviteeState[];
}

/** An invitee as the contract's payload builder takes it, plus what this ledger tracks. */
interface InviteeState extends InviteeFields {
  uuid: string;
  cancellation: Record<string, string> | null;
  event: EventState;
}

export interface BookingInput {
  name?: string;
  email?: string;
  start: string;
  minutes?: number;
  eventName?: string;
  /** Seats for a group event; 1 is a one-on-one. */
  limit?: number;
  location?: Record<string, string>;
  answers?: { question: string; answer: string; position: number }[];
}

/** Calendly timestamps carry microseconds; Postgres keeps them, JavaScript dates would not. */
function micros(ms: number, extraMicros: number): string {
  const iso = new Date(ms).toISOString();
  return `${iso.slice(0, 23)}${String(extraMicros).padStart(3, '0')}Z`;
}

export function fakeCalendlyAccount(options: { name?: string; email?: string; clockStart?: string } = {}) {
  const userUuid = randomUUID();
  const user = {
    uri: `${api}/users/${userUuid}`,
    name: options.name ?? 'Hannah Host',
    email: options.email ?? `host-${userUuid.slice(0, 8)}@example.com`,
  };
  let clock = Date.parse(options.clockStart ?? '2026-05-01T09:00:00.000Z');
  let tick = 0;
  /** Each action happens a little later than the last, as it would in Calendly. */
  const now = () => {
    clock += 1_000;
    tick = (tick + 137) % 1000;
    return micros(clock, tick);
  };

  const eventFields = (event: EventState): ScheduledEventFields => ({
    uri: event.uri,
    name: event.name,
    status: event.status,
    startTime: event.startTime,
    endTime: event.endTime,
    eventTypeUri: event.eventTypeUri,
    location: event.location,
    counter: {
      total: event.invitees.length,
      active: event.invitees.filter((invitee) => invitee.status === 'active').length,
      limit: event.limit,
    },
    hosts: [user],
    cancellation: event.cancellation,
    createdAt: event.createdAt,
    updatedAt: event.updatedAt,
  });

  const deliver = (eventType: string, invitee: InviteeState, subjectUri = invitee.uri): Delivery => {
    const createdAt = now();
    const body = webhookEnvelope(eventType, createdAt, user.uri, inviteeResource(invitee, eventFields(invitee.event)));
    return { eventType, createdAt, subjectUri, body: Buffer.from(JSON.stringify(body)) };
  };

  const newEvent = (input: BookingInput, at: string): EventState => {
    const uuid = randomUUID();
    const start = Date.parse(input.start);
    return {
      uuid,
      uri: `${api}/scheduled_events/${uuid}`,
      name: input.eventName ?? '30 Minute Meeting',
      eventTypeUri: `${api}/event_types/${randomUUID()}`,
      status: 'active',
      startTime: micros(start, 0),
      endTime: micros(start + (input.minutes ?? 30) * 60_000, 0),
      location: input.location ?? { type: 'zoom', join_url: `https://zoom.us/j/${uuid.slice(0, 8)}`, status: 'pushed' },
      limit: input.limit ?? 1,
      cancellation: null,
      createdAt: at,
      updatedAt: at,
      invitees: [],
    };
  };

  const addInvitee = (event: EventState, input: BookingInput, at: string): InviteeState => {
    const uuid = randomUUID();
    const invitee: InviteeState = {
      uuid,
      uri: `${event.uri}/invitees/${uuid}`,
      name: input.name ?? 'Ivy Invitee',
      email: input.email ?? `invitee-${uuid.slice(0, 8)}@example.com`,
      timezone: 'Europe/Berlin',
      status: 'active',
      answers: input.answers ?? [{ question: 'What should we talk about?', answer: 'Pricing', position: 0 }],
      rescheduled: false,
      oldInvitee: null,
      newInvitee: null,
      noShow: null,
      cancellation: null,
      createdAt: at,
      updatedAt: at,
      event,
    };
    event.invitees.push(invitee);
    event.updatedAt = at;
    return invitee;
  };

  const cancelInvitee = (
    invitee: InviteeState,
    by: { cancelerType: 'host' | 'invitee'; reason: string },
    at: string,
  ) => {
    const event = invitee.event;
    invitee.status = 'canceled';
    invitee.updatedAt = at;
    invitee.cancellation = {
      canceled_by: by.cancelerType === 'host' ? user.name : invitee.name,
      reason: by.reason,
      canceler_type: by.cancelerType,
      created_at: at,
    };
    // A one-on-one event is canceled with its invitee; a group event stays scheduled.
    if (event.limit === 1 || by.cancelerType === 'host') {
      event.status = 'canceled';
      event.cancellation = invitee.cancellation;
    }
    event.updatedAt = at;
  };

  return {
    user,
    /** A new booking: a scheduled event with its first invitee. */
    book(input: BookingInput) {
      const at = now();
      const event = newEvent(input, at);
      const invitee = addInvitee(event, input, at);
      return { event, invitee, delivery: deliver('invitee.created', invitee) };
    },
    /** Another invitee takes a seat of a group event. */
    join(event: EventState, input: Omit<BookingInput, 'start'> = {}) {
      const invitee = addInvitee(event, { ...input, start: event.startTime }, now());
      return { invitee, delivery: deliver('invitee.created', invitee) };
    },
    cancel(invitee: InviteeState, by: { cancelerType: 'host' | 'invitee'; reason: string }) {
      cancelInvitee(invitee, by, now());
      return deliver('invitee.canceled', invitee);
    },
    /** Both halves of a reschedule: the old invitee's cancel and the new invitee's create. */
    reschedule(invitee: InviteeState, newStart: string) {
      const at = now();
      const old = invitee.event;
      const event = newEvent({ start: newStart, eventName: old.name, limit: old.limit, location: old.location }, at);
      event.eventTypeUri = old.eventTypeUri;
      const next = addInvitee(
        event,
        { start: newStart, name: invitee.name, email: invitee.email, answers: invitee.answers },
        at,
      );
      next.oldInvitee = invitee.uri;
      invitee.rescheduled = true;
      invitee.newInvitee = next.uri;
      cancelInvitee(invitee, { cancelerType: 'invitee', reason: 'Rescheduled' }, at);
      return {
        event,
        invitee: next,
        canceled: deliver('invitee.canceled', invitee),
        created: deliver('invitee.created', next),
      };
    },
    markNoShow(invitee: InviteeState) {
      const at = now();
      invitee.noShow = { uri: `${api}/invitee_no_shows/${randomUUID()}`, created_at: at };
      return deliver('invitee_no_show.created', invitee, invitee.noShow.uri);
    },
    unmarkNoShow(invitee: InviteeState) {
      const noShowUri = invitee.noShow?.uri ?? invitee.uri;
      invitee.noShow = null;
      return deliver('invitee_no_show.deleted', invitee, noShowUri);
    },
    /** A delivery of a type meetings does not use. */
    eventTypeCreated(): Delivery {
      const createdAt = now();
      const uri = `${api}/event_types/${randomUUID()}`;
      const body = webhookEnvelope('event_type.created', createdAt, user.uri, { uri });
      return { eventType: 'event_type.created', createdAt, subjectUri: uri, body: Buffer.from(JSON.stringify(body)) };
    },
  };
}

export type FakeCalendlyAccount = ReturnType<typeof fakeCalendlyAccount>;

/** The key the gateway publishes this delivery under for `userId`. */
export function deliveryKeyOf(userId: string, delivery: Delivery): string {
  return contractDeliveryKeyOf(userId, {
    event: delivery.eventType,
    subjectUri: delivery.subjectUri,
    createdAtText: delivery.createdAt,
  });
}

/** The CalendlyEvent the gateway publishes for a verified delivery to `userId`. */
export function toCalendlyEvent(userId: string, calendlyUserUri: string, delivery: Delivery): eventsV1.CalendlyEvent {
  return {
    deliveryKey: deliveryKeyOf(userId, delivery),
    userId,
    calendlyUserUri,
    eventType: delivery.eventType,
    calendlyCreatedAt: new Date(delivery.createdAt),
    receivedAt: new Date(),
    payload: delivery.body,
    hookId: `hook-${userId}`,
  };
}

/** Every permutation's worth of orders is too many; a seeded shuffle keeps failures reproducible. */
export function shuffled<T>(items: T[], seed: number): T[] {
  const copy = [...items];
  let state = seed >>> 0 || 1;
  const random = () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 2 ** 32;
  };
  for (let i = copy.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [copy[i], copy[j]] = [copy[j]!, copy[i]!];
  }
  return copy;
}

/** Every order of a few items (for the two halves of a reschedule and the like). */
export function permutations<T>(items: T[]): T[][] {
  if (items.length <= 1) return [items];
  return items.flatMap((item, index) =>
    permutations([...items.slice(0, index), ...items.slice(index + 1)]).map((rest) => [item, ...rest]),
  );
}
