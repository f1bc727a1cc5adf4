import { GrpcStatus } from '@calsync/service-kit';
import { HttpError } from '../http/http-error';
import { upstreamError } from './upstream-error';

const grpcError = (code: GrpcStatus, details = 'safe detail') => Object.assign(new Error(details), { code, details });

describe('upstreamError', () => {
  it.each([
    [GrpcStatus.UNAVAILABLE, 503, 'service_unavailable'],
    [GrpcStatus.DEADLINE_EXCEEDED, 503, 'service_unavailable'],
    [GrpcStatus.RESOURCE_EXHAUSTED, 503, 'service_unavailable'],
    [GrpcStatus.NOT_FOUND, 404, 'not_found'],
    [GrpcStatus.INVALID_ARGUMENT, 400, 'invalid_request'],
    [GrpcStatus.ALREADY_EXISTS, 409, 'conflict'],
    [GrpcStatus.FAILED_PRECONDITION, 409, 'precondition_failed'],
    [GrpcStatus.PERMISSION_DENIED, 403, 'forbidden'],
    [GrpcStatus.INTERNAL, 502, 'upstream_error'],
    [GrpcStatus.UNKNOWN, 502, 'upstream_error'],
  ])('maps gRPC code %s to %s %s', (code, status, errorCode) => {
    const answer = upstreamError(grpcError(code), 'identity');
    expect(answer).toMatchObject({ status, code: errorCode });
    if (status === 503) expect(answer.headers['Retry-After']).toMatch(/^\d+$/);
  });

  it("keeps the service's safe message for refusals and hides it for failures", () => {
    expect(upstreamError(grpcError(GrpcStatus.NOT_FOUND, 'no connection'), 'identity').message).toBe('no connection');
    expect(upstreamError(grpcError(GrpcStatus.INTERNAL, 'pg: relation missing'), 'identity').message).toBe(
      'identity failed',
    );
  });

  it('lets the route decide what a code means for it', () => {
    const answer = upstreamError(grpcError(GrpcStatus.UNAUTHENTICATED, 'token refused'), 'identity', {
      [GrpcStatus.UNAUTHENTICATED]: (message) => new HttpError(400, 'token_rejected', message),
    });
    expect(answer).toMatchObject({ status: 400, code: 'token_rejected', message: 'token refused' });
  });

  it('treats an error without a gRPC code as a failure of the service', () => {
    expect(upstreamError(new TypeError('boom'), 'meetings')).toMatchObject({ status: 502, message: 'meetings failed' });
  });
});
