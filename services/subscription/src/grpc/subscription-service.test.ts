import { subscriptionV1, verifyFailureAnswers } from '@calsync/proto';
import { GrpcError } from '@calsync/service-kit';
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

  it('leaves errors it does not know to the kit (INTERNAL, message hidden)', () => {
    expect(toGrpcError(new Error('boom'))).toBeUndefined();
  });
});
