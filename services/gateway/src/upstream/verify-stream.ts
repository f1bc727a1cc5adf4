import { GrpcError, GrpcStatus, outsideTraces, type Logger, type PromiseClient } from '@calsync/service-kit';
import { subscriptionV1 } from '@calsync/proto';
import type { ClientDuplexStream } from '@grpc/grpc-js';

type SubscriptionClient = PromiseClient<typeof subscriptionV1.SubscriptionServiceService>;
type Call = ClientDuplexStream<subscriptionV1.VerifyDeliveriesRequest, subscriptionV1.VerifyDeliveriesResponse>;

/** How the gateway batches deliveries onto the VerifyDeliveries stream. */
export interface VerifyStreamLimits {
  /** Items per message at most. */
  maxItems: number;
  /** Body bytes per message at most (one larger item still goes alone); far under gRPC's 4 MiB. */
  maxBytes: number;
  /** Items waiting to be written (the stream is flow-controlled) before new ones are refused. */
  maxQueued: number;
  /**
   * Streams used in turn, one message each: opened one after the other, round-robin puts them on
   * different subscription replicas, so the replicas share the deliveries as they shared calls.
   */
  streams: number;
  /** A stream older than this is half-closed and a new one opened, so new replicas get their share. */
  maxAgeMs: number;
}

export const defaultVerifyStreamLimits: VerifyStreamLimits = {
  maxItems: 128,
  maxBytes: 1024 * 1024,
  maxQueued: 4096,
  streams: 4,
  maxAgeMs: 60_000,
};

interface OpenStream {
  call: Call;
  /** Items written on this stream and not answered yet. */
  ids: Set<number>;
  openedAt: number;
  blocked: boolean;
  gone: boolean;
}

interface Waiting {
  resolve(response: subscriptionV1.VerifyAndResolveUserResponse): void;
  reject(error: GrpcError): void;
  deadline: number;
  stream?: OpenStream;
}

/** Many deliveries' verifies over one VerifyDeliveries stream. */
export interface VerifyStream {
  /**
   * Resolves with the item's VerifyAndResolveUserResponse; rejects with a GrpcError carrying
   * the status and reason VerifyAndResolveUser would have failed with (DEADLINE_EXCEEDED after
   * `timeoutMs`, UNAVAILABLE when the stream broke before the answer came).
   */
  verify(
    request: subscriptionV1.VerifyAndResolveUserRequest,
    item: { requestId: string; traceContext: Record<string, string> },
  ): Promise<subscriptionV1.VerifyAndResolveUserResponse>;
  /** Half-closes the stream; later verifies fail UNAVAILABLE. */
  close(): void;
}

/**
 * The gateway's end of VerifyDeliveries. Verifies asked for within one event-loop turn leave
 * as one message (at most `maxItems` / `maxBytes`); answers come back by item id in any order.
 * Messages go to `streams` streams in turn. Each item keeps its own deadline. A stream that breaks fails its unanswered items with
 * UNAVAILABLE (Calendly retries them) and the next verify opens a new one, so there is nothing
 * to reconnect by hand; grpc-js's channel does the reconnecting.
 */
export function createVerifyStream(options: {
  client: SubscriptionClient;
  timeoutMs: number;
  log: Logger;
  limits?: Partial<VerifyStreamLimits>;
  /** Each message sent: its items and their body bytes. */
  onBatch?: (items: number, bytes: number) => void;
}): VerifyStream {
  const limits = { ...defaultVerifyStreamLimits, ...options.limits };
  const { log, timeoutMs } = options;
  // Insertion order is deadline order: every item gets the same timeout.
  const inFlight = new Map<number, Waiting>();
  let queue: subscriptionV1.VerifyDeliveryItem[] = [];
  let queueBytes = 0;
  let nextId = 1;
  const pool: (OpenStream | undefined)[] = Array.from({ length: Math.max(1, limits.streams) }, () => undefined);
  let turn = 0;
  let scheduled: NodeJS.Immediate | undefined;
  let deadlineTimer: NodeJS.Timeout | undefined;
  let closed = false;

  const fail = (id: number, error: GrpcError) => {
    const waiting = inFlight.get(id);
    if (!waiting) return;
    inFlight.delete(id);
    waiting.stream?.ids.delete(id);
    waiting.reject(error);
  };

  const expire = () => {
    deadlineTimer = undefined;
    const now = Date.now();
    for (const [id, waiting] of inFlight) {
      if (waiting.deadline > now) break;
      fail(id, new GrpcError(GrpcStatus.DEADLINE_EXCEEDED, 'Deadline exceeded'));
    }
    armDeadline();
  };
  const armDeadline = () => {
    if (deadlineTimer) return;
    const first = inFlight.values().next();
    if (first.done) return;
    deadlineTimer = setTimeout(expire, Math.max(0, first.value.deadline - Date.now()));
    deadlineTimer.unref();
  };

  const broken = (stream: OpenStream, error: { code?: number; details?: string } | undefined) => {
    if (stream.gone) return;
    stream.gone = true;
    const slot = pool.indexOf(stream);
    if (slot >= 0) pool[slot] = undefined;
    // What waited for this stream's flow control goes out on a new one.
    if (queue.length > 0) scheduled ??= setImmediate(flush);
    if (stream.ids.size === 0) return;
    const code = error?.code === undefined ? 'ended' : (GrpcStatus[error.code] ?? String(error.code));
    log.warn(
      { unanswered: stream.ids.size, code, details: error?.details },
      'verify stream broke; its deliveries get 503',
    );
    for (const id of [...stream.ids]) {
      fail(id, new GrpcError(GrpcStatus.UNAVAILABLE, `the verify stream ended before the answer (${code})`));
    }
  };

  const open = (): OpenStream => {
    // Opened outside any delivery's trace: the stream outlives the request that happened to open it.
    const call = outsideTraces(() => options.client.verifyDeliveries());
    const stream: OpenStream = { call, ids: new Set(), openedAt: Date.now(), blocked: false, gone: false };
    call.on('data', (response: subscriptionV1.VerifyDeliveriesResponse) => {
      for (const result of response.results) settle(result);
    });
    call.on('drain', () => {
      stream.blocked = false;
      flush();
    });
    call.on('error', (error: { code?: number; details?: string }) => broken(stream, error));
    call.on('end', () => broken(stream, undefined));
    return stream;
  };

  const settle = (result: subscriptionV1.VerifyDeliveryResult) => {
    const waiting = inFlight.get(result.id);
    // Answered after its deadline (or the stream's end): the delivery already got its 503.
    if (!waiting) return;
    const outcome = result.outcome;
    if (outcome?.$case === 'verified') {
      inFlight.delete(result.id);
      waiting.stream?.ids.delete(result.id);
      waiting.resolve(outcome.value);
      return;
    }
    const refusal = outcome?.value;
    const reason =
      refusal && refusal.reason !== subscriptionV1.VerifyFailure.VERIFY_FAILURE_UNSPECIFIED
        ? subscriptionV1.verifyFailureToJSON(refusal.reason)
        : undefined;
    fail(
      result.id,
      refusal
        ? new GrpcError(refusal.code, refusal.message, reason)
        : new GrpcError(GrpcStatus.INTERNAL, 'subscription answered the item with nothing'),
    );
  };

  const flush = () => {
    if (scheduled) {
      clearImmediate(scheduled);
      scheduled = undefined;
    }
    while (queue.length > 0) {
      const stream = nextStream();
      // Every stream is waiting for HTTP/2 flow control: their 'drain' flushes again.
      if (!stream) return;
      let bytes = 0;
      let count = 0;
      while (count < queue.length && count < limits.maxItems) {
        const size = queue[count]!.delivery!.rawBody.length;
        if (count > 0 && bytes + size > limits.maxBytes) break;
        bytes += size;
        count += 1;
      }
      const items = queue.slice(0, count);
      queue = queue.slice(count);
      queueBytes -= bytes;
      for (const item of items) {
        const waiting = inFlight.get(item.id);
        if (waiting) {
          waiting.stream = stream;
          stream.ids.add(item.id);
        }
      }
      options.onBatch?.(items.length, bytes);
      if (!stream.call.write({ items })) stream.blocked = true;
    }
  };

  const nextStream = (): OpenStream | undefined => {
    for (let tried = 0; tried < pool.length; tried += 1) {
      const slot = turn++ % pool.length;
      let stream = pool[slot];
      if (stream && !stream.blocked && Date.now() - stream.openedAt > limits.maxAgeMs) {
        // Retired: it still delivers the answers of what it carries, then the server ends it.
        stream.call.end();
        stream = pool[slot] = undefined;
      }
      stream ??= pool[slot] = open();
      if (!stream.blocked) return stream;
    }
    return undefined;
  };

  return {
    verify(request, item) {
      if (closed) return Promise.reject(new GrpcError(GrpcStatus.UNAVAILABLE, 'the gateway is stopping'));
      if (queue.length >= limits.maxQueued) {
        // Items whose deadline passed while they waited already got their answer.
        const live = queue.filter((waiting) => inFlight.has(waiting.id));
        queueBytes = live.reduce((sum, waiting) => sum + waiting.delivery!.rawBody.length, 0);
        queue = live;
      }
      if (queue.length >= limits.maxQueued) {
        return Promise.reject(new GrpcError(GrpcStatus.RESOURCE_EXHAUSTED, 'too many verifies waiting to be sent'));
      }
      return new Promise((resolve, reject) => {
        const id = nextId++;
        inFlight.set(id, { resolve, reject, deadline: Date.now() + timeoutMs });
        armDeadline();
        const size = request.rawBody.length;
        if (queue.length > 0 && queueBytes + size > limits.maxBytes) flush();
        queue.push({ id, delivery: request, requestId: item.requestId, traceContext: item.traceContext });
        queueBytes += size;
        if (queue.length >= limits.maxItems || queueBytes >= limits.maxBytes) flush();
        else scheduled ??= setImmediate(flush);
      });
    },
    close() {
      closed = true;
      if (scheduled) clearImmediate(scheduled);
      for (const item of queue) fail(item.id, new GrpcError(GrpcStatus.UNAVAILABLE, 'the gateway is stopping'));
      queue = [];
      for (const [slot, stream] of pool.entries()) {
        stream?.call.end();
        pool[slot] = undefined;
      }
    },
  };
}
