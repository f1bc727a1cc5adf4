import { subscriptionV1, verifyDeliveriesItemSpanName } from '@calsync/proto';
import {
  GrpcError,
  GrpcStatus,
  grpcStatusOf,
  SpanKind,
  traceItem,
  type DuplexStream,
  type Logger,
} from '@calsync/service-kit';
import { DeliveryRefused, type VerifiedDelivery, type Verifier } from '../verify/verifier';

const maxBodyBytes = 1024 * 1024;
const method = subscriptionV1.SubscriptionServiceService.verifyDeliveries.path;

/**
 * The one way a delivery is verified, for VerifyAndResolveUser and for each item of
 * VerifyDeliveries alike: bounded body, then the domain's verifier.
 */
export function verifyDelivery(
  verifier: Verifier,
  request: subscriptionV1.VerifyAndResolveUserRequest,
): Promise<VerifiedDelivery> {
  if (request.rawBody.length > maxBodyBytes)
    return Promise.reject(new DeliveryRefused(subscriptionV1.VerifyFailure.VERIFY_FAILURE_PAYLOAD_MALFORMED));
  return verifier.verify({
    hookId: request.hookId,
    signatureHeader: request.signatureHeader,
    // A view, not a copy: the bytes are hashed as they arrived.
    rawBody: Buffer.from(request.rawBody.buffer, request.rawBody.byteOffset, request.rawBody.byteLength),
  });
}

const noDelivery: subscriptionV1.VerifyAndResolveUserRequest = {
  hookId: '',
  signatureHeader: '',
  rawBody: Buffer.alloc(0),
};

/**
 * VerifyDeliveries: each item of each message is verified on its own, as VerifyAndResolveUser
 * would verify it, and answered with what that call would have ended with (its response, or
 * its status and VerifyFailure). Answers that are ready within one event-loop turn leave as
 * one message, so a batch costs one write, and a slow item (a hook loaded from Postgres)
 * holds up nobody else. When the server drains, the items in hand are answered and the call
 * ends UNAVAILABLE; the caller opens a new stream (to another replica).
 */
export async function verifyDeliveries(
  stream: DuplexStream<subscriptionV1.VerifyDeliveriesRequest, subscriptionV1.VerifyDeliveriesResponse>,
  deps: { verifier: Verifier; log: Logger; toGrpcError: (error: unknown) => GrpcError | undefined },
): Promise<void> {
  const { verifier, log } = deps;
  let outbox: subscriptionV1.VerifyDeliveryResult[] = [];
  let flushing: NodeJS.Immediate | undefined;
  let written: Promise<void> = Promise.resolve();
  let pending = 0;
  let ended = false;

  const flush = () => {
    flushing = undefined;
    const results = outbox;
    outbox = [];
    // A write that fails means the call is gone: the caller answers its own items (503).
    written = stream.write({ results }).catch(() => undefined);
  };
  const answer = (result: subscriptionV1.VerifyDeliveryResult) => {
    outbox.push(result);
    flushing ??= setImmediate(flush);
  };

  const refusalOf = (error: unknown, requestId: string, hookId: string): subscriptionV1.VerifyDeliveryRefusal => {
    const status = grpcStatusOf(error, { method, log, toGrpcError: deps.toGrpcError });
    // What the kit's interceptor logs for a refused unary call, with the delivery's request id.
    log.info({ method, code: GrpcStatus[status.code], details: status.details, requestId, hookId }, 'delivery refused');
    return {
      code: status.code,
      message: status.details,
      reason:
        error instanceof DeliveryRefused ? error.failure : subscriptionV1.VerifyFailure.VERIFY_FAILURE_UNSPECIFIED,
    };
  };

  const verifyItem = (item: subscriptionV1.VerifyDeliveryItem) => {
    const delivery = item.delivery ?? noDelivery;
    if (Object.keys(item.traceContext).length === 0) return verifyDelivery(verifier, delivery);
    return traceItem(
      verifyDeliveriesItemSpanName,
      { kind: SpanKind.SERVER, parent: item.traceContext, attributes: { 'rpc.system': 'grpc' } },
      () => verifyDelivery(verifier, delivery),
    );
  };

  await new Promise<void>((resolve) => {
    let done = false;
    const finishIfDone = () => {
      if (done || pending > 0 || !(ended || stream.draining.aborted || stream.signal.aborted)) return;
      done = true;
      // The drain signal is the server's, as long-lived as the process: a listener left on it
      // would keep this finished stream for good, one more with every stream a gateway opens.
      stream.draining.removeEventListener('abort', finishIfDone);
      stream.signal.removeEventListener('abort', finishIfDone);
      resolve();
    };
    stream.onMessage((message) => {
      // Past the end (draining): not taken on; the caller answers its unanswered items itself.
      if (done) return;
      for (const item of message.items) {
        pending += 1;
        const settle = (result: subscriptionV1.VerifyDeliveryResult) => {
          answer(result);
          pending -= 1;
          finishIfDone();
        };
        void verifyItem(item).then(
          (verified) => settle({ id: item.id, outcome: { $case: 'verified', value: verified } }),
          (error: unknown) =>
            settle({
              id: item.id,
              outcome: { $case: 'refused', value: refusalOf(error, item.requestId, item.delivery?.hookId ?? '') },
            }),
        );
      }
    });
    stream.onEnd(() => {
      ended = true;
      finishIfDone();
    });
    stream.signal.addEventListener('abort', finishIfDone, { once: true });
    stream.draining.addEventListener('abort', finishIfDone, { once: true });
    finishIfDone();
  });
  if (flushing) {
    clearImmediate(flushing);
    flush();
  }
  await written;
  if (!ended && !stream.signal.aborted) throw new GrpcError(GrpcStatus.UNAVAILABLE, 'shutting down; open a new stream');
}
