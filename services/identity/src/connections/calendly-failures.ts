import { CalendlyError } from '@calsync/calendly-client';

/** A loggable summary of a failure that never includes request data. */
export function describeFailure(error: unknown): Record<string, unknown> {
  if (error instanceof CalendlyError)
    return { operation: error.operation, failure: error.failure, status: error.status, oauthError: error.oauthError };
  return { message: error instanceof Error ? error.message : String(error) };
}

/**
 * Why a refresh Calendly answered produced no token, as metrics label it and operators read it
 * (`last_refresh_error`): http_<status>, with _<Calendly's OAuth error> if it named one (e.g.
 * http_400_invalid_client), else the network failure (timeout, network). Never request data.
 */
export function refreshFailureReason(error: CalendlyError): string {
  if (error.status <= 0) return error.failure;
  // Only an error code as OAuth spells them: Calendly's body is not ours to put in a label.
  const oauthError = /^[a-z_]{1,40}$/.test(error.oauthError ?? '') ? `_${error.oauthError}` : '';
  return `http_${error.status}${oauthError}`;
}
