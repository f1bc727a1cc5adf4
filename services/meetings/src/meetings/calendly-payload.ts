import { z } from 'zod';

/** A delivery that can never be applied however often it is retried: it goes to the dead letters at once. */
export class MalformedEventError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MalformedEventError';
  }
}

/** The Calendly events that change meetings; every other event type is acknowledged and ignored. */
export const inviteeEventTypes = [
  'invitee.created',
  'invitee.canceled',
  'invitee_no_show.created',
  'invitee_no_show.deleted',
] as const;
export type InviteeEventType = (typeof inviteeEventTypes)[number];

/** What the meetings service needs of a delivery, however it arrived (webhook or backfill). */
export interface Delivery {
  deliveryKey: string;
  userId: string;
  eventType: string;
  /** The envelope's created_at as the gateway read it, used when the body lacks it. */
  calendlyCreatedAt?: Date;
  /** The Calendly JSON body, byte-exact. */
  payload: Uint8Array;
}

export interface CancellationFields {
  canceledBy: string | null;
  reason: string | null;
  cancelerType: string | null;
  /** ISO timestamp, kept as Calendly wrote it (microseconds included). */
  canceledAt: string | null;
}

/** One invitee event, normalised: every timestamp is the ISO text Calendly sent, for Postgres to compare exactly. */
export interface InviteeChange {
  userId: string;
  deliveryKey: string;
  eventType: InviteeEventType;
  envelopeCreatedAt: string;
  meeting: {
    uri: string;
    name: string;
    eventTypeUri: string;
    startTime: string;
    endTime: string;
    locationType: string;
    location: string;
    joinUrl: string;
    calendlyCreatedAt: string | null;
    calendlyUpdatedAt: string | null;
    /** Orders snapshots of the scheduled event: its updated_at, else the envelope's created_at. */
    version: string;
    canceled: boolean;
    cancellation: CancellationFields | null;
    /** invitees_counter.active, when the payload has it. */
    activeInvitees: number | null;
  };
  invitee: {
    uri: string;
    name: string;
    email: string;
    timezone: string;
    answers: { question: string; answer: string; position: number }[];
    calendlyCreatedAt: string | null;
    calendlyUpdatedAt: string | null;
    /** Orders snapshots of the invitee: its updated_at, else the envelope's created_at. */
    version: string;
    canceled: boolean;
    cancellation: CancellationFields | null;
    rescheduled: boolean;
    oldInviteeUri: string | null;
    newInviteeUri: string | null;
    noShow: { marked: boolean; uri: string | null; at: string | null };
  };
}

export type ParsedDelivery = { kind: 'invitee'; change: InviteeChange } | { kind: 'ignored'; eventType: string };

const isoTimestamp = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:?\d{2})$/;

// Postgres text refuses NUL, so a string carrying one could never be stored: reject it here.
const text = (max: number) =>
  z
    .string()
    .max(max)
    .refine((value) => !value.includes('\u0000'), 'contains a NUL character');
const timestamp = z
  .string()
  .regex(isoTimestamp, 'is not an ISO 8601 timestamp')
  .refine((value) => !Number.isNaN(Date.parse(value)), 'is not a valid date');
const uri = text(2048).regex(/^https?:\/\/\S+$/, 'is not an http(s) URI');
const optionalText = (max = 2048) => text(max).nullish();
// Location fields differ by location type; anything that is not text is simply not shown.
const looseText = z
  .unknown()
  .optional()
  .transform((value) => (typeof value === 'string' ? value.replaceAll('\u0000', '') : ''));

const cancellationSchema = z.object({
  canceled_by: optionalText(),
  reason: optionalText(10_000),
  canceler_type: optionalText(64),
  created_at: timestamp.nullish(),
});

const scheduledEventSchema = z.object({
  uri,
  name: optionalText(),
  status: z.enum(['active', 'canceled']).nullish(),
  start_time: timestamp,
  end_time: timestamp,
  event_type: optionalText(),
  location: z.object({ type: looseText, location: looseText, join_url: looseText }).nullish(),
  invitees_counter: z.object({ active: z.number().int().nonnegative().nullish() }).nullish(),
  cancellation: cancellationSchema.nullish(),
  created_at: timestamp.nullish(),
  updated_at: timestamp.nullish(),
});

const inviteePayloadSchema = z.object({
  uri,
  email: optionalText(),
  name: optionalText(),
  status: z.enum(['active', 'canceled']).nullish(),
  timezone: optionalText(128),
  event: uri.nullish(),
  questions_and_answers: z
    .array(
      z.object({
        question: text(10_000),
        answer: optionalText(100_000),
        position: z.number().int().nullish(),
      }),
    )
    .max(500)
    .nullish(),
  rescheduled: z.boolean().nullish(),
  old_invitee: uri.nullish(),
  new_invitee: uri.nullish(),
  no_show: z.object({ uri: optionalText(), created_at: timestamp.nullish() }).nullish(),
  cancellation: cancellationSchema.nullish(),
  created_at: timestamp.nullish(),
  updated_at: timestamp.nullish(),
  scheduled_event: scheduledEventSchema,
});

const envelopeSchema = z.object({
  event: text(128).min(1),
  created_at: timestamp.nullish(),
  created_by: optionalText(),
  payload: z.unknown(),
});

function describeIssues(error: z.ZodError, prefix: string): string {
  return error.issues
    .slice(0, 5)
    .map((issue) => `${[prefix, ...issue.path].join('.')}: ${issue.message}`)
    .join('; ');
}

function cancellationOf(
  value: z.infer<typeof cancellationSchema> | null | undefined,
  fallbackAt: string,
): CancellationFields {
  return {
    canceledBy: value?.canceled_by ?? null,
    reason: value?.reason ?? null,
    cancelerType: value?.canceler_type ?? null,
    canceledAt: value?.created_at ?? fallbackAt,
  };
}

/**
 * Reads a delivery into the change it asks for. Throws MalformedEventError when the delivery
 * can never be applied: no user or key, a body that is not Calendly's JSON, a missing invitee
 * or scheduled event, an event type that contradicts the body.
 */
export function parseDelivery(delivery: Delivery): ParsedDelivery {
  if (!delivery.userId || delivery.userId.length > 256) throw new MalformedEventError('user_id is missing or too long');
  if (!delivery.deliveryKey || delivery.deliveryKey.length > 1024)
    throw new MalformedEventError('delivery_key is missing or too long');

  let body: unknown;
  try {
    body = JSON.parse(Buffer.from(delivery.payload).toString('utf8'));
  } catch {
    throw new MalformedEventError('payload is not JSON');
  }
  const envelope = envelopeSchema.safeParse(body);
  if (!envelope.success) throw new MalformedEventError(`envelope: ${describeIssues(envelope.error, 'body')}`);
  const eventType = envelope.data.event;
  if (delivery.eventType && delivery.eventType !== eventType)
    throw new MalformedEventError(`event_type "${delivery.eventType}" contradicts the body's "${eventType}"`);
  if (!(inviteeEventTypes as readonly string[]).includes(eventType)) return { kind: 'ignored', eventType };

  const envelopeCreatedAt = envelope.data.created_at ?? delivery.calendlyCreatedAt?.toISOString();
  if (!envelopeCreatedAt) throw new MalformedEventError('the envelope has no created_at');

  const parsed = inviteePayloadSchema.safeParse(envelope.data.payload);
  if (!parsed.success) throw new MalformedEventError(describeIssues(parsed.error, 'payload'));
  const invitee = parsed.data;
  const event = invitee.scheduled_event;
  if (invitee.event && invitee.event !== event.uri)
    throw new MalformedEventError('payload.event and payload.scheduled_event.uri name different events');
  if (Date.parse(event.end_time) < Date.parse(event.start_time))
    throw new MalformedEventError('payload.scheduled_event ends before it starts');

  const type = eventType as InviteeEventType;
  const inviteeVersion = invitee.updated_at ?? envelopeCreatedAt;
  // invitee.canceled is the cancel whatever the snapshot's status says; other events report the snapshot.
  const inviteeCanceled = type === 'invitee.canceled' || invitee.status === 'canceled';
  const eventCanceled = event.status === 'canceled';
  const noShow =
    type === 'invitee_no_show.deleted'
      ? { marked: false, uri: null, at: null }
      : invitee.no_show || type === 'invitee_no_show.created'
        ? {
            marked: true,
            uri: invitee.no_show?.uri ?? null,
            at: invitee.no_show?.created_at ?? envelopeCreatedAt,
          }
        : { marked: false, uri: null, at: null };

  return {
    kind: 'invitee',
    change: {
      userId: delivery.userId,
      deliveryKey: delivery.deliveryKey,
      eventType: type,
      envelopeCreatedAt,
      meeting: {
        uri: event.uri,
        name: event.name ?? '',
        eventTypeUri: event.event_type ?? '',
        startTime: event.start_time,
        endTime: event.end_time,
        locationType: event.location?.type ?? '',
        location: event.location?.location ?? '',
        joinUrl: event.location?.join_url ?? '',
        calendlyCreatedAt: event.created_at ?? null,
        calendlyUpdatedAt: event.updated_at ?? null,
        version: event.updated_at ?? envelopeCreatedAt,
        canceled: eventCanceled,
        cancellation: eventCanceled ? cancellationOf(event.cancellation, event.updated_at ?? envelopeCreatedAt) : null,
        activeInvitees: event.invitees_counter?.active ?? null,
      },
      invitee: {
        uri: invitee.uri,
        name: invitee.name ?? '',
        email: invitee.email ?? '',
        timezone: invitee.timezone ?? '',
        answers: (invitee.questions_and_answers ?? []).map((qa, index) => ({
          question: qa.question,
          answer: qa.answer ?? '',
          position: qa.position ?? index,
        })),
        calendlyCreatedAt: invitee.created_at ?? null,
        calendlyUpdatedAt: invitee.updated_at ?? null,
        version: inviteeVersion,
        canceled: inviteeCanceled,
        cancellation: inviteeCanceled ? cancellationOf(invitee.cancellation, inviteeVersion) : null,
        rescheduled: invitee.rescheduled === true || Boolean(invitee.new_invitee),
        oldInviteeUri: invitee.old_invitee ?? null,
        newInviteeUri: invitee.new_invitee ?? null,
        noShow,
      },
    },
  };
}
