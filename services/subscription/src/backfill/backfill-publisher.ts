import { eventsV1 } from '@calsync/proto';
import {
  backfillStreamConfig,
  ensureStream,
  publishTraced,
  type JetStreamClient,
  type JetStreamManager,
  type NatsNames,
} from '@calsync/service-kit';

/** A request to fetch a user's meetings for a window from Calendly, because a hook was down. */
export interface BackfillRequest {
  /** Stable for one gap: a re-publish after a crash is deduplicated by JetStream. */
  requestId: string;
  userId: string;
  calendlyUserUri: string;
  windowStart: Date;
  windowEnd: Date;
  reason: string;
  /** A gap after a hook was down, or the initial import on connect (meetings shows its progress). */
  kind: 'gap' | 'initial_import';
}

const kinds = {
  gap: eventsV1.BackfillKind.BACKFILL_KIND_GAP,
  initial_import: eventsV1.BackfillKind.BACKFILL_KIND_INITIAL_IMPORT,
};

export interface BackfillPublisher {
  /** Resolves once JetStream has stored the request. */
  publish(request: BackfillRequest): Promise<void>;
}

/** The backfill stream: this service publishes on it, so it declares it (idempotently) at start. */
export async function declareBackfillStream(jsm: JetStreamManager, names: NatsNames, replicas = 1): Promise<void> {
  await ensureStream(jsm, backfillStreamConfig(names, replicas));
}

/** Publishes eventsV1.BackfillRequested with the request id as JetStream message id. */
export function createBackfillPublisher(options: { js: JetStreamClient; names: NatsNames }): BackfillPublisher {
  return {
    async publish(request) {
      const message = eventsV1.BackfillRequested.encode({
        requestId: request.requestId,
        userId: request.userId,
        calendlyUserUri: request.calendlyUserUri,
        windowStart: request.windowStart,
        windowEnd: request.windowEnd,
        reason: request.reason,
        requestedAt: new Date(),
        kind: kinds[request.kind],
      }).finish();
      await publishTraced(options.js, options.names.backfillSubject, message, { msgID: request.requestId });
    },
  };
}
