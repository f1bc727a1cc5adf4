import {
  GrpcStatus,
  Histogram,
  latencyBuckets,
  reasonOf,
  type PromiseClient,
  type Registry,
} from '@calsync/service-kit';
import { subscriptionV1 } from '@calsync/proto';
import { DeliveryRejected, DependencyUnavailable, type DeliveryVerifier, type RejectionKind } from './delivery-intake';
import { callMetadata } from '../upstream/call-metadata';

type SubscriptionClient = PromiseClient<typeof subscriptionV1.SubscriptionServiceService>;

/** The caller-facing code and message for each VerifyFailure the subscription service names. */
const failureCodes: Partial<Record<keyof typeof subscriptionV1.VerifyFailure, { code: string; message: string }>> = {
  VERIFY_FAILURE_HOOK_NOT_FOUND: {
    code: 'unknown_hook',
    message: 'no active webhook subscription has this callback URL',
  },
  VERIFY_FAILURE_SIGNATURE_MISSING: {
    code: 'signature_missing',
    message: 'the Calendly-Webhook-Signature header is missing',
  },
  VERIFY_FAILURE_SIGNATURE_MALFORMED: {
    code: 'signature_malformed',
    message: 'the Calendly-Webhook-Signature header is malformed',
  },
  VERIFY_FAILURE_SIGNATURE_MISMATCH: { code: 'signature_mismatch', message: 'the signature does not match the body' },
  VERIFY_FAILURE_TIMESTAMP_STALE: { code: 'signature_expired', message: 'the signature timestamp is too old' },
  VERIFY_FAILURE_TIMESTAMP_IN_FUTURE: {
    code: 'signature_from_future',
    message: 'the signature timestamp is in the future',
  },
  VERIFY_FAILURE_PAYLOAD_MALFORMED: {
    code: 'malformed_payload',
    message: 'the delivery is not a Calendly webhook envelope',
  },
  VERIFY_FAILURE_PAYLOAD_OTHER_USER: {
    code: 'payload_not_for_this_hook',
    message: "the delivery does not belong to this subscription's user",
  },
  VERIFY_FAILURE_EVENT_NOT_SUBSCRIBED: {
    code: 'event_not_subscribed',
    message: 'this subscription does not carry this event',
  },
};

const kindByStatus: Partial<Record<GrpcStatus, RejectionKind>> = {
  [GrpcStatus.NOT_FOUND]: 'unknown_hook',
  [GrpcStatus.UNAUTHENTICATED]: 'unauthenticated',
  [GrpcStatus.PERMISSION_DENIED]: 'forbidden',
  [GrpcStatus.INVALID_ARGUMENT]: 'malformed',
};

const defaultCodeByKind: Record<RejectionKind, { code: string; message: string }> = {
  unknown_hook: failureCodes.VERIFY_FAILURE_HOOK_NOT_FOUND!,
  unauthenticated: { code: 'invalid_signature', message: 'the delivery signature is not valid' },
  forbidden: { code: 'forbidden', message: 'this delivery is not accepted on this callback URL' },
  malformed: failureCodes.VERIFY_FAILURE_PAYLOAD_MALFORMED!,
};

/**
 * Turns a failed VerifyAndResolveUser into what the delivery deserves: the status code decides
 * whether it is refused for good (NOT_FOUND, UNAUTHENTICATED, PERMISSION_DENIED,
 * INVALID_ARGUMENT) and the `calsync-reason` names why. Anything else means the subscription
 * service could not give an answer, so Calendly should retry.
 */
export function verifyErrorToDeliveryError(error: unknown): DeliveryRejected | DependencyUnavailable {
  const code = (error as { code?: unknown } | null)?.code;
  const kind = typeof code === 'number' ? kindByStatus[code as GrpcStatus] : undefined;
  if (!kind) {
    const name = typeof code === 'number' ? (GrpcStatus[code] ?? String(code)) : 'no status';
    return new DependencyUnavailable('subscription', `subscription could not verify the delivery (${name})`, error);
  }
  const reason = reasonOf(error);
  const known = reason !== undefined && Object.hasOwn(failureCodes, reason);
  const described = (known && failureCodes[reason as keyof typeof failureCodes]) || defaultCodeByKind[kind];
  return new DeliveryRejected(kind, described.code, described.message);
}

/** VerifyAndResolveUser over gRPC, with its own deadline, carrying the request id and trace context. */
export function createSubscriptionVerifier(options: {
  client: SubscriptionClient;
  timeoutMs: number;
  registry: Registry;
}): DeliveryVerifier {
  const { client, timeoutMs } = options;
  const duration = new Histogram({
    name: 'gateway_verify_duration_seconds',
    help: 'VerifyAndResolveUser as the gateway sees it, by outcome (verified, rejected, unavailable)',
    labelNames: ['outcome'],
    buckets: latencyBuckets,
    registers: [options.registry],
  });
  return {
    async verify(request, context) {
      const stop = duration.startTimer();
      try {
        const response = await client.verifyAndResolveUser(request, {
          timeoutMs,
          metadata: callMetadata(context),
        });
        if (!response.userId || !response.deliveryKey || !response.eventType) {
          // Publishing without a delivery key would defeat de-duplication: better Calendly retries.
          throw new DependencyUnavailable('subscription', 'subscription answered without a user or delivery key');
        }
        stop({ outcome: 'verified' });
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
        stop({ outcome: failure instanceof DeliveryRejected ? 'rejected' : 'unavailable' });
        throw failure;
      }
    },
  };
}
