import { Metadata } from '@grpc/grpc-js';
import { GrpcError, GrpcStatus } from '@calsync/service-kit';
import { subscriptionV1, verifyFailureAnswers } from '@calsync/proto';
import { DeliveryRejected, DependencyUnavailable } from '../webhooks/delivery-intake';
import { verifyErrorToDeliveryError } from './subscription-verifier';
import { statusByKind } from '../webhooks/webhook-routes';

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

describe('verifyErrorToDeliveryError', () => {
  // The consumer's side of docs/errors.md: each refusal as subscription sends it (the producer's
  // side is tested in subscription) reaches Calendly with the table's HTTP status and code.
  it.each(Object.entries(verifyFailureAnswers))(
    'refuses VerifyFailure %s for good as the table says',
    (value, answer) => {
      const reason = subscriptionV1.verifyFailureToJSON(Number(value));
      const mapped = verifyErrorToDeliveryError(
        received(answer.grpc as number as GrpcStatus, Number(value) as subscriptionV1.VerifyFailure),
      );
      expect(mapped).toBeInstanceOf(DeliveryRejected);
      expect(mapped).toMatchObject({ code: answer.code, message: answer.message });
      expect(statusByKind[(mapped as DeliveryRejected).kind]).toBe(answer.http);
      expect(reason).toMatch(/^VERIFY_FAILURE_/);
    },
  );

  it.each(Object.entries(verifyFailureAnswers))(
    'maps a VerifyDeliveries item refused with %s as the unary call',
    (value, answer) => {
      const reason = subscriptionV1.verifyFailureToJSON(Number(value));
      const item = new GrpcError(answer.grpc as number as GrpcStatus, answer.message, reason);
      const unary = received(answer.grpc as number as GrpcStatus, Number(value) as subscriptionV1.VerifyFailure);
      expect(verifyErrorToDeliveryError(item)).toEqual(verifyErrorToDeliveryError(unary));
    },
  );

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
