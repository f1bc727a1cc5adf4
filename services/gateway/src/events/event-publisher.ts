import {
  ensureStream,
  eventsStreamConfig,
  type EventsStreamLimits,
  natsIsConnected,
  publishTraced,
  type NatsConnection,
  type NatsNames,
} from '@calsync/service-kit';
import { eventsV1, reusingEncoder } from '@calsync/proto';
import { headers } from 'nats';
import type { GatewayMetrics } from '../metrics';
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
  metrics: GatewayMetrics;
}): EventPublisher {
  const { nc, names, timeoutMs } = options;
  const js = nc.jetstream();
  const encodeEvent = reusingEncoder(eventsV1.CalendlyEvent);
  return {
    async publish(event, context) {
      if (!natsIsConnected(nc)) throw new DependencyUnavailable('nats', 'NATS is not connected');
      const messageHeaders = headers();
      messageHeaders.set(eventHeaders.requestId, context.requestId);
      const stop = options.metrics.timePublish();
      try {
        const ack = await publishTraced(js, names.eventSubject(event.eventType), encodeEvent(event), {
          msgID: event.deliveryKey,
          headers: messageHeaders,
          timeout: timeoutMs,
          expect: { streamName: names.eventsStream },
        });
        stop(ack.duplicate ? 'duplicate' : 'stored');
        return { duplicate: ack.duplicate, sequence: ack.seq };
      } catch (error) {
        stop('failed');
        throw new DependencyUnavailable('nats', `JetStream did not acknowledge the event: ${describe(error)}`, error);
      }
    },
  };
}

function describe(error: unknown): string {
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
  return [code, message].filter((part) => part !== undefined && part !== '').join(' ') || String(error);
}
