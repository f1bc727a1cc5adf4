import { z } from 'zod';

// Calendly's JSON as shared/CALENDLY.md describes it, in Calendly's own snake_case. The schemas
// insist only on the fields calsync relies on and keep every other field as it came, so a new
// Calendly field never breaks a caller and a missing essential one fails loudly at the edge.

const nullableString = z.string().nullable();

export const tokenResponseSchema = z.looseObject({
  token_type: z.string(),
  access_token: z.string().min(1),
  refresh_token: z.string().min(1),
  scope: z.string().default(''),
  created_at: z.number(),
  expires_in: z.number().positive(),
  owner: z.string().min(1),
  organization: z.string().min(1),
});
/** `POST /oauth/token` answer, for both the authorization_code and refresh_token grants. */
export type TokenResponse = z.infer<typeof tokenResponseSchema>;

export const introspectionSchema = z.looseObject({ active: z.boolean() });

export const calendlyUserSchema = z.looseObject({
  uri: z.string().min(1),
  name: z.string(),
  slug: z.string().optional(),
  email: z.string(),
  scheduling_url: z.string().optional(),
  timezone: z.string().optional(),
  avatar_url: nullableString.optional(),
  current_organization: z.string().min(1),
  resource_type: z.string().optional(),
  created_at: z.string().optional(),
  updated_at: z.string().optional(),
});
/** `GET /users/me` resource. */
export type CalendlyUser = z.infer<typeof calendlyUserSchema>;

export type WebhookScope = 'user' | 'organization' | 'group';

export const webhookSubscriptionSchema = z.looseObject({
  uri: z.string().min(1),
  callback_url: z.string(),
  created_at: z.string(),
  updated_at: z.string().optional(),
  retry_started_at: nullableString.optional(),
  state: z.string(),
  events: z.array(z.string()),
  scope: z.string(),
  organization: z.string(),
  user: nullableString.optional(),
  group: nullableString.optional(),
  creator: nullableString.optional(),
});
/** A webhook subscription; `state` is "active" or "disabled" (the response never has the signing key). */
export type WebhookSubscription = z.infer<typeof webhookSubscriptionSchema>;

export const scheduledEventSchema = z.looseObject({
  uri: z.string().min(1),
  name: z.string().nullable().optional(),
  status: z.string(),
  start_time: z.string(),
  end_time: z.string(),
  event_type: z.string().optional(),
  location: z.looseObject({ type: z.string().optional() }).nullable().optional(),
  invitees_counter: z.looseObject({ total: z.number(), active: z.number(), limit: z.number() }).optional(),
  event_memberships: z
    .array(z.looseObject({ user: z.string(), user_email: z.string().optional(), user_name: z.string().optional() }))
    .optional(),
  event_guests: z.array(z.unknown()).optional(),
  cancellation: z.unknown().optional(),
  created_at: z.string(),
  updated_at: z.string(),
});
/** A scheduled event (a meeting) from `GET /scheduled_events`. */
export type ScheduledEvent = z.infer<typeof scheduledEventSchema>;

export const inviteeSchema = z.looseObject({
  uri: z.string().min(1),
  email: z.string(),
  name: z.string(),
  first_name: nullableString.optional(),
  last_name: nullableString.optional(),
  status: z.string(),
  timezone: nullableString.optional(),
  event: z.string(),
  questions_and_answers: z.array(z.unknown()).optional(),
  tracking: z.unknown().optional(),
  rescheduled: z.boolean().optional(),
  old_invitee: nullableString.optional(),
  new_invitee: nullableString.optional(),
  cancel_url: z.string().optional(),
  reschedule_url: z.string().optional(),
  no_show: z.looseObject({ uri: z.string(), created_at: z.string() }).nullable().optional(),
  cancellation: z.unknown().optional(),
  created_at: z.string(),
  updated_at: z.string(),
});
/** An invitee of a scheduled event from `GET /scheduled_events/{uuid}/invitees`. */
export type Invitee = z.infer<typeof inviteeSchema>;

export const paginationSchema = z.looseObject({
  count: z.number(),
  next_page: nullableString.optional().transform((value) => value ?? null),
  next_page_token: nullableString.optional().transform((value) => value ?? null),
  previous_page: nullableString.optional().transform((value) => value ?? null),
  previous_page_token: nullableString.optional().transform((value) => value ?? null),
});
export type Pagination = z.infer<typeof paginationSchema>;

/** Where the caller's per-user budget stood after a call, from Calendly's `X-RateLimit-*` headers. */
export interface RateLimitState {
  limit: number;
  remaining: number;
  /** Seconds until the window resets. */
  resetSeconds: number;
}

/** One page of a Calendly list; follow `pagination.next_page_token` for the next. */
export interface Page<T> {
  collection: T[];
  pagination: Pagination;
  /** The rate-limit headers of the answer, when Calendly sent all three. */
  rateLimit?: RateLimitState;
}

/** Calendly's error body: `{title, message, details?}`; OAuth endpoints answer `{error, error_description}`. */
export const errorBodySchema = z.looseObject({
  title: z.string().optional(),
  message: z.string().optional(),
  details: z
    .array(
      z.looseObject({ parameter: z.string().optional(), message: z.string().optional(), code: z.string().optional() }),
    )
    .optional(),
  error: z.string().optional(),
  error_description: z.string().optional(),
});
export type CalendlyErrorDetail = NonNullable<z.infer<typeof errorBodySchema>['details']>[number];
