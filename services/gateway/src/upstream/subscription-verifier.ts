import {
  GrpcError,
  GrpcStatus,
  reasonOf,
  SpanKind,
  traceItem,
  tracingStarted,
  type Logger,
  type PromiseClient,
} from '@calsync/service-kit';
import { subscriptionV1, verifyDeliveriesItemSpanName, verifyFailureAnswerOf } from '@calsync/proto';
import {
  DeliveryRejected,
  DependencyUnavailable,
  type DeliveryVerifier,
  type RejectionKind,
} from '../webhooks/delivery-intake';
import type { GatewayMetrics } from '../metrics';
import { callMetadata } from './call-metadata';
import { createVerifyStream, type VerifyStreamLimits } from './verify-stream';

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
 * Turns a failed verify into what the delivery deserves: the status code decides whether it is
 * refused for good (NOT_FOUND, UNAUTHENTICATED, PERMISSION_DENIED, INVALID_ARGUMENT) and the
 * reason names why, per the one table in @calsync/proto (docs/errors.md). Anything else means
 * the subscription service could not give an answer, so Calendly should retry. The error is a
 * failed VerifyAndResolveUser (reason in its `calsync-reason` trailer) or a VerifyDeliveries
 * item's GrpcError (reason from the item's answer): both carry the same code and reason.
 */
export function verifyErrorToDeliveryError(error: unknown): DeliveryRejected | DependencyUnavailable {
  const code = (error as { code?: unknown } | null)?.code;
  const kind = typeof code === 'number' ? kindByStatus[code as GrpcStatus] : undefined;
  if (!kind) {
    const name = typeof code === 'number' ? (GrpcStatus[code] ?? String(code)) : 'no status';
    return new DependencyUnavailable('subscription', `subscription could not verify the delivery (${name})`, error);
  }
  const reason = error instanceof GrpcError ? error.reason : reasonOf(error);
  const described = verifyFailureAnswerOf(reason) ?? defaultCodeByKind[kind];
  return new DeliveryRejected(kind, described.code, described.message);
}

/** How the gateway asks subscription to verify: many per VerifyDeliveries stream, or one call each. */
export type VerifyTransport = 'stream' | 'unary';

// Larger bodies are verified with their own VerifyAndResolveUser call: a message over gRPC's
// 4 MiB limit would break the stream and every delivery on it, where it fails only its own call.
const streamItemMaxBytes = 3 * 1024 * 1024;

/**
 * Verifies each delivery with subscription, with its own deadline, carrying its request id and
 * trace context: over the VerifyDeliveries stream (batched per event-loop turn, verify-stream.ts)
 * or with one VerifyAndResolveUser call each. Either way the answer, the HTTP status it becomes
 * and the gateway_verify_duration_seconds observation are per delivery and the same.
 */
export function createSubscriptionVerifier(options: {
  client: SubscriptionClient;
  timeoutMs: number;
  metrics: GatewayMetrics;
  transport: VerifyTransport;
  log: Logger;
  streamLimits?: Partial<VerifyStreamLimits>;
}): DeliveryVerifier & { close(): void } {
  const { client, timeoutMs } = options;
  const stream =
    options.transport === 'stream'
      ? createVerifyStream({
          client,
          timeoutMs,
          log: options.log,
          onBatch: options.metrics.observeVerifyBatch,
          ...(options.streamLimits ? { limits: options.streamLimits } : {}),
        })
      : undefined;
  const unary = (request: subscriptionV1.VerifyAndResolveUserRequest, context: { requestId: string }) =>
    client.verifyAndResolveUser(request, { timeoutMs, metadata: callMetadata(context) });
  const call = (request: subscriptionV1.VerifyAndResolveUserRequest, context: { requestId: string }) => {
    if (!stream || request.rawBody.length > streamItemMaxBytes) return unary(request, context);
    if (!tracingStarted()) return stream.verify(request, { requestId: context.requestId, traceContext: {} });
    // The stream's own call is not traced (it outlives every delivery): each item is.
    return traceItem(
      verifyDeliveriesItemSpanName,
      { kind: SpanKind.CLIENT, attributes: { 'rpc.system': 'grpc' } },
      (traceContext) => stream.verify(request, { requestId: context.requestId, traceContext }),
    );
  };
  return {
    async verify(request, context) {
      const stop = options.metrics.timeVerify();
      try {
        const response = await call(request, context);
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
    close() {
      stream?.close();
    },
  };
}
