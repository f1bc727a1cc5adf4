import {
  ensureStream,
  eventsStreamConfig,
  type EventsStreamLimits,
  Histogram,
  latencyBuckets,
  natsIsConnected,
  publishTraced,
  type NatsConnection,
  type NatsNames,
  type Registry,
} from '@calsync/service-kit';
import { eventsV1 } from '@calsync/proto';
import { headers } from 'nats';
import { DependencyUnavailable, type EventPublisher } from '../webhooks/delivery-intake';

/** NATS header names the gateway sets on every event, beside Nats-Msg-Id and the trace context. */
export const eventHeaders = {
  requestId: 'X-Request-Id',
} as const;

/** Declares the events stream (idempotent) with the kit's settings and the configured limits. */
export async function ensureEventsStream(
  nc: NatsConnection,
  names: NatsNames,
  limits: EventsStreamLimits,
): Promise<void> {
  await ensureStream(await nc.jetstreamManager(), eventsStreamConfig(names, limits));
}

/**
 * Publishes CalendlyEvents to JetStream with the delivery key as Nats-Msg-Id and resolves only
 * on the stream's acknowledgement. Refuses at once while NATS is disconnected: nats.js would
 * otherwise buffer the message and send it after the caller was already told 503.
 */
export function createEventPublisher(options: {
  nc: NatsConnection;
  names: NatsNames;
  timeoutMs: number;
  registry: Registry;
}): EventPublisher {
  const { nc, names, timeoutMs } = options;
  const js = nc.jetstream();
  const duration = new Histogram({
    name: 'gateway_publish_duration_seconds',
    help: 'JetStream publish of a delivery until acknowledged, by outcome (stored, duplicate, failed)',
    labelNames: ['outcome'],
    buckets: latencyBuckets,
    registers: [options.registry],
  });
  return {
    async publish(event, context) {
      if (!natsIsConnected(nc)) throw new DependencyUnavailable('nats', 'NATS is not connected');
      const messageHeaders = headers();
      messageHeaders.set(eventHeaders.requestId, context.requestId);
      const stop = duration.startTimer();
      try {
        const ack = await publishTraced(
          js,
          names.eventSubject(event.eventType),
          eventsV1.CalendlyEvent.encode(event).finish(),
          {
            msgID: event.deliveryKey,
            headers: messageHeaders,
            timeout: timeoutMs,
            expect: { streamName: names.eventsStream },
          },
        );
        stop({ outcome: ack.duplicate ? 'duplicate' : 'stored' });
        return { duplicate: ack.duplicate, sequence: ack.seq };
      } catch (error) {
        stop({ outcome: 'failed' });
        throw new DependencyUnavailable('nats', `JetStream did not acknowledge the event: ${describe(error)}`, error);
      }
    },
  };
}

function describe(error: unknown): string {
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
  return [code, message].filter((part) => part !== undefined && part !== '').join(' ') || String(error);
}
