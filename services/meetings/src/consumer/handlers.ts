import { CalendlyError } from '@calsync/calendly-client';
import { eventsV1 } from '@calsync/proto';
import { BackfillRejectedError, type Backfill } from '../backfill/backfill-service';
import type { ImportKind } from '../backfill/import-checkpoints';
import { MalformedEventError } from '../meetings/calendly-payload';
import type { MeetingsApplier } from '../meetings/meetings-applier';
import { createPerKeyOrder } from './per-key-order';
import type { MessageContext } from './pull-worker';

function decode<T>(message: { decode(bytes: Uint8Array): T }, data: Uint8Array, what: string): T {
  try {
    return message.decode(data);
  } catch {
    throw new MalformedEventError(`message is not a ${what}`);
  }
}

/**
 * Applies one eventsV1.CalendlyEvent from the events stream. The worker hands over several at
 * once; a user's deliveries are still applied one after another in the order they arrived, so
 * that user's change feed follows the order Calendly sent them in (other users' run beside).
 */
export function calendlyEventHandler(applier: MeetingsApplier) {
  const perUser = createPerKeyOrder();
  return async (data: Uint8Array): Promise<void> => {
    const event = decode(eventsV1.CalendlyEvent, data, 'calsync.events.v1.CalendlyEvent');
    await perUser.run(event.userId, () =>
      applier.apply({
        deliveryKey: event.deliveryKey,
        userId: event.userId,
        eventType: event.eventType,
        calendlyCreatedAt: event.calendlyCreatedAt,
        payload: event.payload,
        ...(event.receivedAt ? { receivedAt: event.receivedAt } : {}),
      }),
    );
  };
}

const backfillKinds: Record<eventsV1.BackfillKind, ImportKind> = {
  [eventsV1.BackfillKind.BACKFILL_KIND_UNSPECIFIED]: 'gap',
  [eventsV1.BackfillKind.BACKFILL_KIND_GAP]: 'gap',
  [eventsV1.BackfillKind.BACKFILL_KIND_INITIAL_IMPORT]: 'initial_import',
  [eventsV1.BackfillKind.UNRECOGNIZED]: 'gap',
};

/**
 * Runs one eventsV1.BackfillRequested from the backfill stream. A failure is recorded on the
 * import (retrying, or failed on its last delivery) before the worker retries or dead-letters it.
 */
export function backfillRequestedHandler(backfill: Backfill, options: { maxDeliver: number }) {
  return async (data: Uint8Array, context: MessageContext): Promise<void> => {
    const request = decode(eventsV1.BackfillRequested, data, 'calsync.events.v1.BackfillRequested');
    await backfill.run(
      {
        requestId: request.requestId,
        userId: request.userId,
        calendlyUserUri: request.calendlyUserUri,
        windowStart: request.windowStart,
        windowEnd: request.windowEnd,
        reason: request.reason,
        kind: backfillKinds[request.kind] ?? 'gap',
      },
      {
        working: context.working,
        signal: context.signal,
        // The worker dead-letters it now: a failure no retry fixes, or its last delivery.
        endsRequest: (error) => isPermanentFailure(error) || context.deliveryCount >= options.maxDeliver,
      },
    );
  };
}

/**
 * Failures no retry can fix. Calendly's 400/403/404 answers stay the same on every try; a 401
 * is retried, as identity may hand out a refreshed token next time.
 */
export function isPermanentFailure(error: unknown): boolean {
  if (error instanceof MalformedEventError || error instanceof BackfillRejectedError) return true;
  if (error instanceof CalendlyError) return !error.transient && error.status !== 401;
  return false;
}
