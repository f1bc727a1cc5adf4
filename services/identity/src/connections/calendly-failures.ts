import { CalendlyError } from '@calsync/calendly-client';

/** A loggable summary of a failure that never includes request data. */
export function describeFailure(error: unknown): Record<string, unknown> {
  if (error instanceof CalendlyError)
    return { operation: error.operation, failure: error.failure, status: error.status, oauthError: error.oauthError };
  return { message: error instanceof Error ? error.message : String(error) };
}
