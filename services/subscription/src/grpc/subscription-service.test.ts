import { CalendlyError } from '@calsync/calendly-client';
import { subscriptionV1, verifyFailureAnswers } from '@calsync/proto';
import { GrpcError, GrpcStatus } from '@calsync/service-kit';
import { calendlyFailed, invalidInput, SubscriptionError } from '../errors';
import { DeliveryRefused } from '../verify/verifier';
import { toGrpcError } from './subscription-service';

// The producer's side of docs/errors.md (the gateway tests the consumer's side).
describe('toGrpcError', () => {
  it.each(Object.entries(verifyFailureAnswers))(
    'sends VerifyFailure %s with the table status and its name',
    (value, answer) => {
      const failure = Number(value) as subscriptionV1.VerifyFailure;
      const error = toGrpcError(new DeliveryRefused(failure));
      expect(error).toBeInstanceOf(GrpcError);
      expect(error).toMatchObject({ code: answer.grpc, reason: subscriptionV1.verifyFailureToJSON(failure) });
    },
  );

  it.each([
    [{ failure: 'timeout' as const }, GrpcStatus.UNAVAILABLE],
    [{ failure: 'network' as const }, GrpcStatus.UNAVAILABLE],
    [{ failure: 'invalid_response' as const, status: 200 }, GrpcStatus.UNAVAILABLE],
    [{ status: 400 }, GrpcStatus.INVALID_ARGUMENT],
    [{ status: 401 }, GrpcStatus.UNAUTHENTICATED],
    [{ status: 404 }, GrpcStatus.NOT_FOUND],
    [{ status: 409 }, GrpcStatus.ALREADY_EXISTS],
    [{ status: 429 }, GrpcStatus.RESOURCE_EXHAUSTED],
    [{ status: 502 }, GrpcStatus.UNAVAILABLE],
  ])('answers a failed Calendly call %j with status %i and its safe message, no reason', (init, code) => {
    const calendly = new CalendlyError({ operation: 'createWebhookSubscription', failure: 'http', ...init });
    expect(toGrpcError(calendlyFailed(calendly))).toMatchObject({
      code,
      message: calendly.safeMessage,
      reason: undefined,
    });
  });

  it('sends the reason only for failures the contract names', () => {
    expect(toGrpcError(new SubscriptionError('CALENDLY_FORBIDDEN', 'Calendly refused'))).toMatchObject({
      code: GrpcStatus.FAILED_PRECONDITION,
      message: 'Calendly refused',
      reason: 'CALENDLY_FORBIDDEN',
    });
    expect(toGrpcError(invalidInput('user_id is required'))).toMatchObject({
      code: GrpcStatus.INVALID_ARGUMENT,
      reason: undefined,
    });
  });

  it('leaves errors it does not know to the kit (INTERNAL, message hidden)', () => {
    expect(toGrpcError(new Error('boom'))).toBeUndefined();
  });
});
