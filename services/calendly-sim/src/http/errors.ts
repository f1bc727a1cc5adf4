/** One entry of a Calendly error's `details`. */
export interface ErrorDetail {
  parameter?: string;
  message: string;
  code?: string;
}

/** An error answered in Calendly's API shape `{title, message, details?}`. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly title: string,
    message: string,
    readonly details?: ErrorDetail[],
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'ApiError';
  }

  body(): { title: string; message: string; details?: ErrorDetail[] } {
    return this.details
      ? { title: this.title, message: this.message, details: this.details }
      : { title: this.title, message: this.message };
  }
}

/** An error answered in OAuth's shape `{error, error_description}` (RFC 6749 section 5.2). */
export class OAuthError extends Error {
  constructor(
    readonly status: number,
    readonly error: string,
    readonly description: string,
  ) {
    super(description);
    this.name = 'OAuthError';
  }
}

export const invalidArgument = (details: ErrorDetail[]) =>
  new ApiError(400, 'Invalid Argument', 'The supplied parameters are invalid.', details);

export const unauthenticated = (message: string) => new ApiError(401, 'Unauthenticated', message);

export const permissionDenied = (message = 'You do not have permission to access this resource.') =>
  new ApiError(403, 'Permission Denied', message);

export const notFound = () =>
  new ApiError(404, 'Resource Not Found', 'The server could not find the requested resource.');

/** For the control API: a conflict with the simulated world's current state. */
export const conflict = (title: string, message: string) => new ApiError(409, title, message);
