/** Seconds a caller should wait before retrying when a dependency cannot answer. */
export const retryAfterSeconds = 5;

/**
 * A failure the gateway answers on purpose: its status, a stable machine-readable code and a
 * message that is safe to show the caller. Rendered as JSON `{error, message}`.
 */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
    /** What went wrong underneath, for the log only. */
    cause?: unknown,
  ) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'HttpError';
  }
}

/** 503 with Retry-After: the caller (Calendly included) should try again shortly. */
export function unavailable(code: string, message: string, cause?: unknown): HttpError {
  return new HttpError(503, code, message, { 'Retry-After': String(retryAfterSeconds) }, cause);
}
