import type { CalendlyError } from '@calsync/calendly-client';

/**
 * Why subscription refused a request or could not do it. The gRPC adapter's table
 * (src/grpc/subscription-service.ts) gives each its status; the message is always safe to show
 * the caller and to store as a hook's last error. A refused delivery is a DeliveryRefused.
 */
export type SubscriptionFailure =
  /** A request field is missing or malformed; the message names it. */
  | 'INVALID_INPUT'
  | 'NOT_CONNECTED'
  /** identity says the user must connect Calendly again. */
  | 'REAUTH_REQUIRED'
  | 'IDENTITY_REFUSED_USER_ID'
  | 'IDENTITY_UNAVAILABLE'
  /** Calendly's 403 to a webhook call: the plan or the user's role. */
  | 'CALENDLY_FORBIDDEN'
  /** Any other failed Calendly call; the CalendlyError is the cause. */
  | 'CALENDLY_FAILED'
  /** Something other than Calendly's answer failed while talking to Calendly (logged). */
  | 'CALENDLY_CALL_BROKEN'
  | 'APPLICATION_SIGNING_KEY_MISSING'
  /** Calendly kept answering that a fresh callback URL already exists. */
  | 'CALLBACK_URL_TAKEN'
  /** A sync ended without a hook and without saying why. */
  | 'NO_WEBHOOK'
  | 'RECONCILE_RUNNING'
  | 'RECONCILE_LOCK_LOST';

/** A failure of subscription's domain. */
export class SubscriptionError extends Error {
  constructor(
    readonly failure: SubscriptionFailure,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'SubscriptionError';
  }
}

export const invalidInput = (message: string) => new SubscriptionError('INVALID_INPUT', message);

export const notConnected = () => new SubscriptionError('NOT_CONNECTED', 'the user has no Calendly connection');

/** A failed Calendly call in the words any caller may see; the call's error is the cause. */
export const calendlyFailed = (error: CalendlyError) =>
  new SubscriptionError('CALENDLY_FAILED', error.safeMessage, { cause: error });
