import { ensureConsumer, ensureStream, type JetStreamManager, type NatsNames } from '@calsync/service-kit';
import { AckPolicy, DeliverPolicy, nanos, StorageType } from 'nats';

/** The settings every declarer of calsync's streams uses, so whoever starts first makes the same stream. */
const streamDefaults = (replicas: number) => ({
  storage: StorageType.File,
  duplicate_window: nanos(2 * 60_000),
  num_replicas: replicas,
});

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
  // The events and backfill streams belong to their publishers: created here only when missing.
  const defaults = streamDefaults(options.streamReplicas);
  const onlyCreate = { onlyCreate: true };
  await ensureStream(jsm, { name: names.eventsStream, subjects: [names.eventsSubjects], ...defaults }, onlyCreate);
  await ensureStream(jsm, { name: names.backfillStream, subjects: [names.backfillSubject], ...defaults }, onlyCreate);
  await ensureStream(jsm, { name: names.deadLetterStream, subjects: [names.deadLetterSubjects], ...defaults });
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
