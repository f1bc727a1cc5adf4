/**
 * Why identity refused a request or could not serve it. The gRPC adapter's table
 * (src/grpc/identity-service.ts) gives each its status; the message is always safe to show the caller.
 */
export type IdentityFailure =
  /** A request field is missing or malformed; the message names it. */
  | 'INVALID_INPUT'
  | 'NOT_CONNECTED'
  /** Calendly refused the connection's refresh token: the user must connect again. */
  | 'REAUTH_REQUIRED'
  | 'TOKEN_RATE_LIMITED'
  | 'CALENDLY_ACCOUNT_TAKEN'
  | 'OAUTH_NOT_CONFIGURED'
  | 'OAUTH_STATE_INVALID'
  | 'OAUTH_STATE_EXPIRED'
  | 'OAUTH_CODE_REFUSED'
  | 'PERSONAL_TOKEN_REFUSED'
  /** Another replica holds the user's refresh lock for longer than identity waits. */
  | 'REFRESH_IN_PROGRESS'
  /** Calendly refused calsync's own token refresh (e.g. invalid_client): no caller can fix it. */
  | 'REFRESH_REFUSED';

/** A failure of identity's domain; a failed Calendly call stays a CalendlyError. */
export class IdentityError extends Error {
  constructor(
    readonly failure: IdentityFailure,
    message: string,
  ) {
    super(message);
    this.name = 'IdentityError';
  }
}

export const invalidInput = (message: string) => new IdentityError('INVALID_INPUT', message);

export const notConnected = () => new IdentityError('NOT_CONNECTED', 'this user has no Calendly connection');

export const reauthRequired = () =>
  new IdentityError(
    'REAUTH_REQUIRED',
    'Calendly no longer accepts this Calendly connection (its refresh token was revoked or already used): the user must connect Calendly again',
  );

export const tokenRateLimited = (retryAfterSeconds: number) =>
  new IdentityError(
    'TOKEN_RATE_LIMITED',
    `too many Calendly token requests for this user in the last minute; retry in ${retryAfterSeconds} s`,
  );
