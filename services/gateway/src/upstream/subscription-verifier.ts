import { GrpcStatus, reasonOf, type PromiseClient } from '@calsync/service-kit';
import { subscriptionV1, verifyFailureAnswerOf } from '@calsync/proto';
import {
  DeliveryRejected,
  DependencyUnavailable,
  type DeliveryVerifier,
  type RejectionKind,
} from '../webhooks/delivery-intake';
import type { GatewayMetrics } from '../metrics';
import { callMetadata } from './call-metadata';

type SubscriptionClient = PromiseClient<typeof subscriptionV1.SubscriptionServiceService>;

const kindByStatus: Partial<Record<GrpcStatus, RejectionKind>> = {
  [GrpcStatus.NOT_FOUND]: 'unknown_hook',
  [GrpcStatus.UNAUTHENTICATED]: 'unauthenticated',
  [GrpcStatus.PERMISSION_DENIED]: 'forbidden',
  [GrpcStatus.INVALID_ARGUMENT]: 'malformed',
};

/** The code of a refusal whose reason subscription did not name. */
export const defaultCodeByKind: Record<RejectionKind, { code: string; message: string }> = {
  unknown_hook: verifyFailureAnswerOf('VERIFY_FAILURE_HOOK_NOT_FOUND')!,
  unauthenticated: { code: 'invalid_signature', message: 'the delivery signature is not valid' },
  forbidden: { code: 'forbidden', message: 'this delivery is not accepted on this callback URL' },
  malformed: verifyFailureAnswerOf('VERIFY_FAILURE_PAYLOAD_MALFORMED')!,
};

/**
 * Turns a failed VerifyAndResolveUser into what the delivery deserves: the status code decides
 * whether it is refused for good (NOT_FOUND, UNAUTHENTICATED, PERMISSION_DENIED,
 * INVALID_ARGUMENT) and the `calsync-reason` names why, per the one table in @calsync/proto
 * (docs/errors.md). Anything else means the subscription
 * service could not give an answer, so Calendly should retry.
 */
export function verifyErrorToDeliveryError(error: unknown): DeliveryRejected | DependencyUnavailable {
  const code = (error as { code?: unknown } | null)?.code;
  const kind = typeof code === 'number' ? kindByStatus[code as GrpcStatus] : undefined;
  if (!kind) {
    const name = typeof code === 'number' ? (GrpcStatus[code] ?? String(code)) : 'no status';
    return new DependencyUnavailable('subscription', `subscription could not verify the delivery (${name})`, error);
  }
  const described = verifyFailureAnswerOf(reasonOf(error)) ?? defaultCodeByKind[kind];
  return new DeliveryRejected(kind, described.code, described.message);
}

/** VerifyAndResolveUser over gRPC, with its own deadline, carrying the request id. */
export function createSubscriptionVerifier(options: {
  client: SubscriptionClient;
  timeoutMs: number;
  metrics: GatewayMetrics;
}): DeliveryVerifier {
  const { client, timeoutMs } = options;
  return {
    async verify(request, context) {
      const stop = options.metrics.timeVerify();
      try {
        const response = await client.verifyAndResolveUser(request, {
          timeoutMs,
          metadata: callMetadata(context),
        });
        if (!response.userId || !response.deliveryKey || !response.eventType) {
          // Publishing without a delivery key would defeat de-duplication: better Calendly retries.
          throw new DependencyUnavailable('subscription', 'subscription answered without a user or delivery key');
        }
        stop('verified');
        return {
          userId: response.userId,
          calendlyUserUri: response.calendlyUserUri,
          eventType: response.eventType,
          deliveryKey: response.deliveryKey,
          hookId: response.hookId,
          ...(response.eventCreatedAt ? { eventCreatedAt: response.eventCreatedAt } : {}),
        };
      } catch (error) {
        const failure = error instanceof DependencyUnavailable ? error : verifyErrorToDeliveryError(error);
        stop(failure instanceof DeliveryRejected ? 'rejected' : 'unavailable');
        throw failure;
      }
    },
  };
}
