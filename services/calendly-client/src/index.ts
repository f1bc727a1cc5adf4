export { createCalendlyClient, rateLimitOf, retryAfterSeconds } from './client';
export type { CalendlyClient, CalendlyClientOptions, ScheduledEventsQuery, WebhookSubscriptionQuery } from './client';
export { CalendlyError, type CalendlyFailure } from './errors';
export type {
  CalendlyErrorDetail,
  CalendlyUser,
  Invitee,
  Page,
  Pagination,
  RateLimitState,
  ScheduledEvent,
  TokenResponse,
  WebhookScope,
  WebhookSubscription,
} from './types';
export * from './webhooks';
