import {
  backfillStreamConfig,
  deadLetterStreamConfig,
  ensureConsumer,
  ensureStream,
  eventsStreamConfig,
  eventsStreamDefaults,
  type JetStreamManager,
  type NatsNames,
} from '@calsync/service-kit';
import { AckPolicy, DeliverPolicy, nanos } from 'nats';

export interface TopologyOptions {
  names: NatsNames;
  durableName: string;
  maxDeliver: number;
  ackWaitMs: number;
  streamReplicas: number;
}

/** The backfill consumer's durable name, derived so one variable names both. */
export const backfillDurableName = (durableName: string) => `${durableName}-backfill`;

/**
 * Declares what the meetings service reads and writes: the events and backfill streams (only
 * when missing; their publishers own them), the dead-letter stream (ours), and our two durable
 * pull consumers. Explicit acks, a bounded number of deliveries; the back-off between them is
 * chosen per message when it is negatively acknowledged.
 */
export async function declareTopology(jsm: JetStreamManager, options: TopologyOptions): Promise<void> {
  const { names } = options;
  // The events and backfill streams belong to their publishers: created here only when missing,
  // with the kit's settings, so whoever starts first makes the same stream.
  const replicas = options.streamReplicas;
  const onlyCreate = { onlyCreate: true };
  await ensureStream(jsm, eventsStreamConfig(names, { ...eventsStreamDefaults, replicas }), onlyCreate);
  await ensureStream(jsm, backfillStreamConfig(names, replicas), onlyCreate);
  await ensureStream(jsm, deadLetterStreamConfig(names, replicas));
  const consumer = {
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    ack_wait: nanos(options.ackWaitMs),
    max_deliver: options.maxDeliver,
  };
  await ensureConsumer(jsm, names.eventsStream, { durable_name: options.durableName, ...consumer });
  await ensureConsumer(jsm, names.backfillStream, {
    durable_name: backfillDurableName(options.durableName),
    ...consumer,
  });
}
