import { Metadata, status, type ServiceError } from '@grpc/grpc-js';

/** Trailing-metadata key carrying a machine-readable reason next to a gRPC status. */
export const reasonMetadataKey = 'calsync-reason';

/**
 * An error a gRPC handler throws on purpose: its code, a message that is safe to show the
 * caller (never a secret), and an optional reason name from the contract.
 */
export class GrpcError extends Error {
  constructor(
    readonly code: status,
    message: string,
    readonly reason?: string,
  ) {
    super(message);
    this.name = 'GrpcError';
  }

  /** The error as grpc-js sends it, with the reason in trailing metadata. */
  toServiceError(): Partial<ServiceError> {
    const metadata = new Metadata();
    if (this.reason) metadata.set(reasonMetadataKey, this.reason);
    return { code: this.code, details: this.message, metadata };
  }
}

/** The reason a server attached to a failed call, if any. */
export function reasonOf(error: unknown): string | undefined {
  const metadata = (error as ServiceError | undefined)?.metadata;
  if (!(metadata instanceof Metadata)) return undefined;
  const [value] = metadata.get(reasonMetadataKey);
  return value === undefined ? undefined : String(value);
}

/** True when the error is a gRPC error with this code. */
export function hasCode(error: unknown, code: status): boolean {
  return typeof error === 'object' && error !== null && (error as ServiceError).code === code;
}

export { status as GrpcStatus } from '@grpc/grpc-js';

const statusByHttpStatus: Partial<Record<number, status>> = {
  401: status.UNAUTHENTICATED,
  403: status.PERMISSION_DENIED,
  404: status.NOT_FOUND,
  409: status.ALREADY_EXISTS,
  429: status.RESOURCE_EXHAUSTED,
};

/**
 * What a failed HTTP call to an outside API (Calendly) means for our own callers, by the HTTP
 * status it answered: no answer, an unreadable one (undefined) or a 5xx is UNAVAILABLE (worth a
 * retry); the refusals keep their meaning; any other 4xx is INVALID_ARGUMENT.
 */
export function grpcStatusOfHttpFailure(httpStatus: number | undefined): status {
  if (httpStatus === undefined || httpStatus >= 500) return status.UNAVAILABLE;
  return statusByHttpStatus[httpStatus] ?? status.INVALID_ARGUMENT;
}
