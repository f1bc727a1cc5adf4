import { ensureConsumer, ensureStream, type JetStreamManager, type NatsNames } from '@calsync/service-kit';
import { AckPolicy, DeliverPolicy, nanos, StorageType, type StreamConfig } from 'nats';

/** The settings every declarer of calsync's streams uses, so whoever starts first makes the same stream. */
const streamDefaults = { storage: StorageType.File, duplicate_window: nanos(2 * 60_000) };

function isStreamNotFound(error: unknown): boolean {
  const value = error as { code?: string | number; api_error?: { err_code?: number } } | undefined;
  return value?.api_error?.err_code === 10059 || String(value?.code) === '404';
}

/**
 * Creates a stream another service publishes to when it does not exist yet, and otherwise
 * leaves it exactly as its owner configured it (retention, limits, replicas are theirs).
 */
export async function ensureStreamExists(
  jsm: JetStreamManager,
  config: Partial<StreamConfig> & { name: string; subjects: string[] },
): Promise<'created' | 'existed'> {
  try {
    await jsm.streams.info(config.name);
    return 'existed';
  } catch (error) {
    if (!isStreamNotFound(error)) throw error;
  }
  try {
    await jsm.streams.add(config);
    return 'created';
  } catch (error) {
    // The owner (or another replica) created it between our look and our add.
    if (/already in use|already exists/i.test(String(error))) return 'existed';
    throw error;
  }
}

export interface TopologyOptions {
  names: NatsNames;
  durableName: string;
  maxDeliver: number;
  ackWaitMs: number;
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
  await ensureStreamExists(jsm, { name: names.eventsStream, subjects: [names.eventsSubjects], ...streamDefaults });
  await ensureStreamExists(jsm, { name: names.backfillStream, subjects: [names.backfillSubject], ...streamDefaults });
  await ensureStream(jsm, { name: names.deadLetterStream, subjects: [names.deadLetterSubjects], ...streamDefaults });
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
