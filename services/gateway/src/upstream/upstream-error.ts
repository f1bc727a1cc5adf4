import { GrpcStatus } from '@calsync/service-kit';
import { HttpError, unavailable } from '../http/http-error';

type Override = (message: string) => HttpError;

/**
 * The HTTP answer for a failed call to identity, subscription or meetings. Unavailable or slow
 * services become 503 with Retry-After; expected refusals keep the service's safe message;
 * anything unexpected becomes 502 without details. `overrides` lets a route say what a code
 * means for it (e.g. UNAUTHENTICATED from ConnectWithPersonalToken is a rejected token).
 */
export function upstreamError(
  error: unknown,
  service: string,
  overrides: Partial<Record<GrpcStatus, Override>> = {},
): HttpError {
  if (error instanceof HttpError) return error;
  const { code, details } = (error ?? {}) as { code?: unknown; details?: unknown };
  if (typeof code !== 'number') return new HttpError(502, 'upstream_error', `${service} failed`, {}, error);
  const message = typeof details === 'string' && details ? details : `${service} refused the request`;
  const override = overrides[code as GrpcStatus];
  if (override) return override(message);
  switch (code) {
    case GrpcStatus.UNAVAILABLE:
    case GrpcStatus.DEADLINE_EXCEEDED:
    case GrpcStatus.RESOURCE_EXHAUSTED:
      return unavailable('service_unavailable', `${service} cannot answer now; try again shortly`, error);
    case GrpcStatus.NOT_FOUND:
      return new HttpError(404, 'not_found', message);
    case GrpcStatus.INVALID_ARGUMENT:
      return new HttpError(400, 'invalid_request', message);
    case GrpcStatus.ALREADY_EXISTS:
      return new HttpError(409, 'conflict', message);
    case GrpcStatus.FAILED_PRECONDITION:
      return new HttpError(409, 'precondition_failed', message);
    case GrpcStatus.PERMISSION_DENIED:
      return new HttpError(403, 'forbidden', message);
    default:
      return new HttpError(502, 'upstream_error', `${service} failed`, {}, error);
  }
}
