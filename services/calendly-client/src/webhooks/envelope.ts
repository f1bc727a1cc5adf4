import { createHash } from 'node:crypto';
import { z } from 'zod';

// Calendly's webhook body: `{event, created_at, created_by, payload}`. One rule set for every
// reader: subscription reads whose delivery it is (once its signature matched), meetings
// reads the invitee. Only meetings reads the whole invitee payload.

const isoTimestamp = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:?\d{2})$/;

// Postgres text refuses NUL, so a string carrying one could never be stored: refuse it here.
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
export type WebhookCancellation = z.infer<typeof cancellationSchema>;

const membershipsSchema = z.array(z.looseObject({ user: text(2048) }));

/**
 * Every payload is a resource with a URI; invitee payloads also say who hosts the event. Only
 * these fields are read (the envelope hands readers the payload as sent), so everything else is
 * left out of the parsed copy instead of being copied into it: every delivery is parsed on the
 * hot path, by subscription.
 */
const payloadSchema = z.object({
  uri,
  no_show: z.object({ uri: optionalText() }).nullish(),
  scheduled_event: z.object({ event_memberships: z.array(z.object({ user: text(2048) })).nullish() }).nullish(),
});

/** A body's text, decoded where it lies (Buffer.from(bytes) would copy them first). */
const textOf = (body: Uint8Array | string): string =>
  typeof body === 'string' ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8');

const envelopeSchema = z.object({
  event: text(128).min(1),
  created_at: timestamp.nullish(),
  created_by: optionalText(),
  payload: payloadSchema,
});

/** A Calendly webhook body, read. */
export interface WebhookEnvelope {
  event: string;
  /** The text as sent: part of the delivery key, so it is never re-formatted. */
  createdAtText: string;
  createdAt: Date;
  createdBy: string | undefined;
  /** The invitee URI, or for a no-show the no-show's URI: what this delivery is about. */
  subjectUri: string;
  /** Calendly users hosting the scheduled event (empty for payloads without one). */
  hostUris: string[];
  /** The payload as sent, for readers of a particular event (see parseInviteePayload). */
  payload: unknown;
}

export type EnvelopeProblem = 'not_json' | 'not_envelope';

export type EnvelopeResult =
  { ok: true; envelope: WebhookEnvelope } | { ok: false; problem: EnvelopeProblem; detail: string };

/**
 * Reads a webhook body. `createdAtFallback` is for a reader that already holds the time the
 * delivery was made (meetings, from the gateway's record) and accepts a body without one.
 */
export function parseWebhookEnvelope(
  body: Uint8Array | string,
  options: { createdAtFallback?: Date } = {},
): EnvelopeResult {
  let json: unknown;
  try {
    json = JSON.parse(textOf(body));
  } catch {
    return { ok: false, problem: 'not_json', detail: 'the body is not valid JSON' };
  }
  const parsed = envelopeSchema.safeParse(json);
  if (!parsed.success) return { ok: false, problem: 'not_envelope', detail: describeIssues(parsed.error, 'body') };
  const { event, created_at, created_by, payload } = parsed.data;
  const createdAtText = created_at ?? options.createdAtFallback?.toISOString();
  if (!createdAtText) return { ok: false, problem: 'not_envelope', detail: 'the envelope has no created_at' };
  const noShowUri = event.startsWith('invitee_no_show.') ? payload.no_show?.uri : undefined;
  return {
    ok: true,
    envelope: {
      event,
      createdAtText,
      createdAt: new Date(createdAtText),
      createdBy: created_by ?? undefined,
      subjectUri: noShowUri || payload.uri,
      hostUris: (payload.scheduled_event?.event_memberships ?? []).map((membership) => membership.user),
      payload: (json as { payload: unknown }).payload,
    },
  };
}

/**
 * The envelope's `created_by`, read without validating the rest: the only routing hint of the
 * legacy single URL, needed before the signature (and so the rest of the body) can be trusted.
 */
export function creatorOf(body: Uint8Array | string): string | undefined {
  try {
    const json = JSON.parse(textOf(body)) as {
      created_by?: unknown;
    };
    return typeof json.created_by === 'string' && json.created_by.length > 0 ? json.created_by : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Stable across Calendly's retries of one delivery (Calendly sends no delivery id): event, the
 * invitee (or no-show) URI and created_at as sent. The platform user is part of it too, so a
 * group event delivered to two hosts stays two messages, while the same delivery arriving on a
 * user's legacy and per-user URL is one. Meetings' inbox and JetStream's message id both use it.
 */
export function deliveryKeyOf(
  userId: string,
  delivery: Pick<WebhookEnvelope, 'event' | 'subjectUri' | 'createdAtText'>,
): string {
  return createHash('sha256')
    .update([userId, delivery.event, delivery.subjectUri, delivery.createdAtText].join('\n'))
    .digest('hex');
}

const scheduledEventSchema = z.object({
  uri,
  name: optionalText(),
  status: z.enum(['active', 'canceled']).nullish(),
  start_time: timestamp,
  end_time: timestamp,
  event_type: optionalText(),
  location: z.object({ type: looseText, location: looseText, join_url: looseText }).nullish(),
  invitees_counter: z.object({ active: z.number().int().nonnegative().nullish() }).nullish(),
  event_memberships: membershipsSchema.nullish(),
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

/** The payload of invitee.* and invitee_no_show.* deliveries: the invitee with its scheduled event. */
export type InviteePayload = z.infer<typeof inviteePayloadSchema>;

export type InviteePayloadResult = { ok: true; invitee: InviteePayload } | { ok: false; detail: string };

/** Reads an invitee payload strictly: every field calsync stores must be what Calendly documents. */
export function parseInviteePayload(payload: unknown): InviteePayloadResult {
  const parsed = inviteePayloadSchema.safeParse(payload);
  if (!parsed.success) return { ok: false, detail: describeIssues(parsed.error, 'payload') };
  const invitee = parsed.data;
  if (invitee.event && invitee.event !== invitee.scheduled_event.uri)
    return { ok: false, detail: 'payload.event and payload.scheduled_event.uri name different events' };
  if (Date.parse(invitee.scheduled_event.end_time) < Date.parse(invitee.scheduled_event.start_time))
    return { ok: false, detail: 'payload.scheduled_event ends before it starts' };
  return { ok: true, invitee };
}

function describeIssues(error: z.ZodError, prefix: string): string {
  return error.issues
    .slice(0, 5)
    .map((issue) => `${[prefix, ...issue.path].join('.')}: ${issue.message}`)
    .join('; ');
}
