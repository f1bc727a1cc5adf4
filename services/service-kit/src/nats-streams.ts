import { DiscardPolicy, nanos, RetentionPolicy, StorageType, type StreamConfig } from 'nats';
import type { NatsNames } from './nats-names';

/**
 * One duplicate window for every calsync stream. Ten minutes outlasts Calendly's first quick
 * retries and a caller's timeout-and-retry, so those are dropped by JetStream itself; later
 * repeats (Calendly retries for 24 hours) are caught by meetings' inbox, keyed by the same
 * delivery key. Longer would only grow the message ids NATS keeps in memory.
 */
export const duplicateWindowSeconds = 600;

/** Retention of the events stream; the gateway owns the stream and may configure these. */
export interface EventsStreamLimits {
  maxAgeSeconds: number;
  /** -1: unlimited. */
  maxBytes: number;
  duplicateWindowSeconds: number;
  /** Copies of the stream on a NATS cluster. */
  replicas: number;
}

export const eventsStreamDefaults: Omit<EventsStreamLimits, 'replicas'> = {
  maxAgeSeconds: 7 * 24 * 3600,
  maxBytes: -1,
  duplicateWindowSeconds,
};

type Stream = Partial<StreamConfig> & { name: string; subjects: string[] };

/**
 * The events stream: file storage so a NATS restart keeps what was acknowledged, and
 * DiscardPolicy.New so a full stream refuses new deliveries (Calendly retries them) instead of
 * silently dropping stored ones.
 */
export function eventsStreamConfig(names: NatsNames, limits: EventsStreamLimits): Stream {
  return {
    name: names.eventsStream,
    subjects: [names.eventsSubjects],
    storage: StorageType.File,
    retention: RetentionPolicy.Limits,
    discard: DiscardPolicy.New,
    max_age: nanos(limits.maxAgeSeconds * 1000),
    max_bytes: limits.maxBytes,
    duplicate_window: nanos(limits.duplicateWindowSeconds * 1000),
    num_replicas: limits.replicas,
  };
}

/** The backfill stream: a request only matters until meetings caught up; two weeks covers a long outage. */
export function backfillStreamConfig(names: NatsNames, replicas: number): Stream {
  return {
    name: names.backfillStream,
    subjects: [names.backfillSubject],
    storage: StorageType.File,
    max_age: nanos(14 * 24 * 3600 * 1000),
    duplicate_window: nanos(duplicateWindowSeconds * 1000),
    num_replicas: replicas,
  };
}

/** The dead-letter stream: kept until an operator deals with it. */
export function deadLetterStreamConfig(names: NatsNames, replicas: number): Stream {
  return {
    name: names.deadLetterStream,
    subjects: [names.deadLetterSubjects],
    storage: StorageType.File,
    duplicate_window: nanos(duplicateWindowSeconds * 1000),
    num_replicas: replicas,
  };
}
