import { Metadata } from '@grpc/grpc-js';
import { GrpcError, GrpcStatus } from '@calsync/service-kit';
import { subscriptionV1 } from '@calsync/proto';
import { DeliveryRejected, DependencyUnavailable } from './delivery-intake';
import { verifyErrorToDeliveryError } from './subscription-verifier';

/** The error grpc-js hands a client for a GrpcError thrown by a calsync handler. */
function received(code: GrpcStatus, reason?: subscriptionV1.VerifyFailure) {
  const sent = new GrpcError(
    code,
    'refused',
    reason === undefined ? undefined : subscriptionV1.verifyFailureToJSON(reason),
  );
  const { metadata } = sent.toServiceError();
  return Object.assign(new Error('refused'), { code, details: 'refused', metadata: metadata ?? new Metadata() });
}

const F = subscriptionV1.VerifyFailure;

describe('verifyErrorToDeliveryError', () => {
  it.each([
    [GrpcStatus.NOT_FOUND, F.VERIFY_FAILURE_HOOK_NOT_FOUND, 'unknown_hook', 'unknown_hook'],
    [GrpcStatus.UNAUTHENTICATED, F.VERIFY_FAILURE_SIGNATURE_MISMATCH, 'unauthenticated', 'signature_mismatch'],
    [GrpcStatus.UNAUTHENTICATED, F.VERIFY_FAILURE_SIGNATURE_MISSING, 'unauthenticated', 'signature_missing'],
    [GrpcStatus.UNAUTHENTICATED, F.VERIFY_FAILURE_SIGNATURE_MALFORMED, 'unauthenticated', 'signature_malformed'],
    [GrpcStatus.UNAUTHENTICATED, F.VERIFY_FAILURE_TIMESTAMP_STALE, 'unauthenticated', 'signature_expired'],
    [GrpcStatus.UNAUTHENTICATED, F.VERIFY_FAILURE_TIMESTAMP_IN_FUTURE, 'unauthenticated', 'signature_from_future'],
    [GrpcStatus.PERMISSION_DENIED, F.VERIFY_FAILURE_PAYLOAD_OTHER_USER, 'forbidden', 'payload_not_for_this_hook'],
    [GrpcStatus.PERMISSION_DENIED, F.VERIFY_FAILURE_EVENT_NOT_SUBSCRIBED, 'forbidden', 'event_not_subscribed'],
    [GrpcStatus.INVALID_ARGUMENT, F.VERIFY_FAILURE_PAYLOAD_MALFORMED, 'malformed', 'malformed_payload'],
  ])('refuses for good on %s with reason %s', (code, reason, kind, errorCode) => {
    const mapped = verifyErrorToDeliveryError(received(code, reason));
    expect(mapped).toBeInstanceOf(DeliveryRejected);
    expect(mapped).toMatchObject({ kind, code: errorCode });
  });

  it('lets the status code decide even when the reason is missing or unknown', () => {
    const odd = Object.assign(received(GrpcStatus.UNAUTHENTICATED), { metadata: new Metadata() });
    odd.metadata.set('calsync-reason', 'toString');
    expect(verifyErrorToDeliveryError(odd)).toMatchObject({ kind: 'unauthenticated', code: 'invalid_signature' });
    expect(verifyErrorToDeliveryError(received(GrpcStatus.UNAUTHENTICATED))).toMatchObject({
      kind: 'unauthenticated',
      code: 'invalid_signature',
    });
    expect(verifyErrorToDeliveryError(received(GrpcStatus.PERMISSION_DENIED))).toMatchObject({ kind: 'forbidden' });
    expect(verifyErrorToDeliveryError(received(GrpcStatus.NOT_FOUND))).toMatchObject({ kind: 'unknown_hook' });
  });

  it.each([
    GrpcStatus.UNAVAILABLE,
    GrpcStatus.DEADLINE_EXCEEDED,
    GrpcStatus.INTERNAL,
    GrpcStatus.UNKNOWN,
    GrpcStatus.RESOURCE_EXHAUSTED,
    GrpcStatus.FAILED_PRECONDITION,
  ])('asks for a retry when subscription could not answer (%s)', (code) => {
    const mapped = verifyErrorToDeliveryError(received(code));
    expect(mapped).toBeInstanceOf(DependencyUnavailable);
    expect(mapped).toMatchObject({ dependency: 'subscription' });
  });

  it('asks for a retry on an error that is not a gRPC status at all', () => {
    expect(verifyErrorToDeliveryError(new Error('socket hang up'))).toBeInstanceOf(DependencyUnavailable);
  });
});
