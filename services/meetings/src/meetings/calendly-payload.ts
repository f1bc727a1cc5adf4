import {
  isInviteeEvent,
  parseInviteePayload,
  parseWebhookEnvelope,
  type InviteeEvent,
  type WebhookCancellation,
} from '@calsync/calendly-client';

/** A delivery that can never be applied however often it is retried: it goes to the dead letters at once. */
export class MalformedEventError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MalformedEventError';
  }
}

/** What the meetings service needs of a delivery, however it arrived (webhook or backfill). */
export interface Delivery {
  deliveryKey: string;
  userId: string;
  eventType: string;
  /** The envelope's created_at as the gateway read it, used when the body lacks it. */
  calendlyCreatedAt?: Date;
  /** The Calendly JSON body, byte-exact. */
  payload: Uint8Array;
  /**
   * When the gateway accepted it from Calendly: set for webhook deliveries, which the delivery
   * log records; unset for what a backfill fetched (not a delivery).
   */
  receivedAt?: Date;
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
  eventType: InviteeEvent;
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

function cancellationOf(value: WebhookCancellation | null | undefined, fallbackAt: string): CancellationFields {
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

  const read = parseWebhookEnvelope(delivery.payload, { createdAtFallback: delivery.calendlyCreatedAt });
  if (!read.ok)
    throw new MalformedEventError(read.problem === 'not_json' ? 'payload is not JSON' : `envelope: ${read.detail}`);
  const { envelope } = read;
  const type = envelope.event;
  if (delivery.eventType && delivery.eventType !== type)
    throw new MalformedEventError(`event_type "${delivery.eventType}" contradicts the body's "${type}"`);
  if (!isInviteeEvent(type)) return { kind: 'ignored', eventType: type };
  const envelopeCreatedAt = envelope.createdAtText;

  const parsed = parseInviteePayload(envelope.payload);
  if (!parsed.ok) throw new MalformedEventError(parsed.detail);
  const { invitee } = parsed;
  const event = invitee.scheduled_event;

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
