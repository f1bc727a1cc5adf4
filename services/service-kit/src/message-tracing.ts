import {
  context,
  propagation,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Span,
  type TextMapGetter,
  type TextMapSetter,
} from '@opentelemetry/api';
import {
  headers as natsHeaders,
  type JetStreamClient,
  type JetStreamPublishOptions,
  type MsgHdrs,
  type PubAck,
} from 'nats';

// JetStream has no OpenTelemetry instrumentation: its two hops are traced here, with the
// API's propagator carrying W3C trace context in the message headers. With tracing off the
// API is a no-op: no span is recorded and the headers get nothing.
const tracer = trace.getTracer('@calsync/service-kit');

const headerSetter: TextMapSetter<MsgHdrs> = {
  set: (carrier, key, value) => carrier.set(key, value),
};

const headerGetter: TextMapGetter<MsgHdrs | undefined> = {
  keys: (carrier) => (carrier ? carrier.keys() : []),
  get: (carrier, key) => (carrier?.has(key) ? carrier.get(key) : undefined),
};

function fail(span: Span, error: unknown): void {
  span.recordException(error instanceof Error ? error : String(error));
  span.setStatus({ code: SpanStatusCode.ERROR });
}

/**
 * Publishes to JetStream inside a PRODUCER span, with the current trace context in the
 * message headers so the consumer's processing joins the same trace.
 */
export async function publishTraced(
  js: JetStreamClient,
  subject: string,
  data: Uint8Array,
  options: Partial<JetStreamPublishOptions> = {},
): Promise<PubAck> {
  return tracer.startActiveSpan(
    `publish ${subject}`,
    {
      kind: SpanKind.PRODUCER,
      attributes: {
        'messaging.system': 'nats',
        'messaging.operation.type': 'send',
        'messaging.destination.name': subject,
        ...(options.msgID ? { 'messaging.message.id': options.msgID } : {}),
      },
    },
    async (span) => {
      try {
        const headers = options.headers ?? natsHeaders();
        propagation.inject(context.active(), headers, headerSetter);
        const ack = await js.publish(subject, data, { ...options, headers });
        span.setAttribute('messaging.nats.stream_sequence', ack.seq);
        if (ack.duplicate) span.setAttribute('messaging.nats.duplicate', true);
        return ack;
      } catch (error) {
        fail(span, error);
        throw error;
      } finally {
        span.end();
      }
    },
  );
}

/**
 * Runs a consumer's work for one message inside a CONSUMER span whose parent is the trace
 * context the publisher put in the headers, so every SQL statement and call it makes joins
 * the publisher's trace. Junk in the headers starts a new trace, never an error.
 */
export function processTraced<T>(
  message: { subject: string; headers?: MsgHdrs },
  attributes: Record<string, string | number>,
  work: () => Promise<T>,
): Promise<T> {
  const parent = propagation.extract(ROOT_CONTEXT, message.headers, headerGetter);
  return tracer.startActiveSpan(
    `process ${message.subject}`,
    {
      kind: SpanKind.CONSUMER,
      attributes: {
        'messaging.system': 'nats',
        'messaging.operation.type': 'process',
        'messaging.destination.name': message.subject,
        ...attributes,
      },
    },
    parent,
    async (span) => {
      try {
        return await work();
      } catch (error) {
        fail(span, error);
        throw error;
      } finally {
        span.end();
      }
    },
  );
}

const recordGetter: TextMapGetter<Record<string, string>> = {
  keys: (carrier) => Object.keys(carrier),
  get: (carrier, key) => (Object.hasOwn(carrier, key) ? carrier[key] : undefined),
};

/**
 * Runs one item of a batched call (many items in one gRPC message, e.g. VerifyDeliveries)
 * inside its own span, and gives `work` the trace context to send with the item: on the
 * caller's side (`kind` CLIENT) the span's child of the current context, on the server's side
 * (`kind` SERVER, `parent` the context the item carried) a child of the caller's span. With
 * tracing off nothing is recorded and the context is empty.
 */
export function traceItem<T>(
  name: string,
  options: { kind: SpanKind; parent?: Record<string, string>; attributes?: Record<string, string | number> },
  work: (traceContext: Record<string, string>) => Promise<T>,
): Promise<T> {
  const parent = options.parent ? propagation.extract(ROOT_CONTEXT, options.parent, recordGetter) : context.active();
  return tracer.startActiveSpan(
    name,
    { kind: options.kind, ...(options.attributes ? { attributes: options.attributes } : {}) },
    parent,
    async (span) => {
      const carrier: Record<string, string> = {};
      propagation.inject(context.active(), carrier);
      try {
        return await work(carrier);
      } catch (error) {
        fail(span, error);
        throw error;
      } finally {
        span.end();
      }
    },
  );
}

export { SpanKind } from '@opentelemetry/api';

/** Runs `work` outside any trace, e.g. to open a long-lived call that no one request owns. */
export function outsideTraces<T>(work: () => T): T {
  return context.with(ROOT_CONTEXT, work);
}
