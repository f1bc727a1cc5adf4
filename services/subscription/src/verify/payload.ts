import { createHash } from 'node:crypto';
import { z } from 'zod';

const envelopeSchema = z.looseObject({
  event: z.string().min(1).max(100),
  created_at: z.string().min(1),
  created_by: z.string().min(1).optional(),
  payload: z.looseObject({
    uri: z.string().min(1),
    no_show: z
      .looseObject({ uri: z.string().min(1) })
      .nullable()
      .optional(),
    scheduled_event: z
      .looseObject({
        event_memberships: z.array(z.looseObject({ user: z.string() })).optional(),
      })
      .optional(),
  }),
});

/** The parts of a Calendly delivery that decide whose it is and which delivery it is. */
export interface Envelope {
  event: string;
  /** The text as sent: part of the delivery key, so it must not be re-formatted. */
  createdAtText: string;
  createdAt: Date;
  createdBy: string | undefined;
  /** The invitee URI, or for a no-show the no-show's URI. */
  subjectUri: string;
  /** Calendly users hosting the scheduled event. */
  memberUris: string[];
}

/** Reads the envelope `{event, created_at, created_by, payload}`; undefined when it is not one. */
export function parseEnvelope(rawBody: Buffer): Envelope | undefined {
  let json: unknown;
  try {
    json = JSON.parse(rawBody.toString('utf8'));
  } catch {
    return undefined;
  }
  const parsed = envelopeSchema.safeParse(json);
  if (!parsed.success) return undefined;
  const { event, created_at: createdAtText, created_by: createdBy, payload } = parsed.data;
  const createdAt = new Date(createdAtText);
  if (Number.isNaN(createdAt.getTime())) return undefined;
  const subjectUri = event.startsWith('invitee_no_show.') && payload.no_show ? payload.no_show.uri : payload.uri;
  return {
    event,
    createdAtText,
    createdAt,
    createdBy,
    subjectUri,
    memberUris: (payload.scheduled_event?.event_memberships ?? []).map((membership) => membership.user),
  };
}

/** The envelope's `created_by`, read without validating the rest: the legacy URL's only routing hint. */
export function creatorOf(rawBody: Buffer): string | undefined {
  try {
    const json = JSON.parse(rawBody.toString('utf8')) as { created_by?: unknown };
    return typeof json.created_by === 'string' && json.created_by.length > 0 ? json.created_by : undefined;
  } catch {
    return undefined;
  }
}

/** True when the delivery concerns this Calendly user: they created the subscription or host the event. */
export function belongsTo(envelope: Envelope, calendlyUserUri: string): boolean {
  return envelope.createdBy === calendlyUserUri || envelope.memberUris.includes(calendlyUserUri);
}

/**
 * Stable across Calendly's retries of one delivery (Calendly sends no delivery id): event, the
 * invitee (or no-show) URI and created_at, per shared/CALENDLY.md. The platform user is part of
 * it too, so a group event delivered to two hosts stays two messages, while the same delivery
 * arriving on a user's legacy and per-user URL is one.
 */
export function deliveryKeyOf(userId: string, envelope: Envelope): string {
  return createHash('sha256')
    .update([userId, envelope.event, envelope.subjectUri, envelope.createdAtText].join('\n'))
    .digest('hex');
}
