import { CalendlyError } from '@calsync/calendly-client';
import { eventsV1 } from '@calsync/proto';
import { BackfillRejectedError, type Backfill } from '../backfill/backfill-service';
import { MalformedEventError } from '../meetings/calendly-payload';
import type { MeetingsApplier } from '../meetings/meetings-applier';
import type { MessageContext } from './pull-worker';

function decode<T>(message: { decode(bytes: Uint8Array): T }, data: Uint8Array, what: string): T {
  try {
    return message.decode(data);
  } catch {
    throw new MalformedEventError(`message is not a ${what}`);
  }
}

/** Applies one eventsV1.CalendlyEvent from the events stream. */
export function calendlyEventHandler(applier: MeetingsApplier) {
  return async (data: Uint8Array): Promise<void> => {
    const event = decode(eventsV1.CalendlyEvent, data, 'calsync.events.v1.CalendlyEvent');
    await applier.apply({
      deliveryKey: event.deliveryKey,
      userId: event.userId,
      eventType: event.eventType,
      calendlyCreatedAt: event.calendlyCreatedAt,
      payload: event.payload,
    });
  };
}

/** Runs one eventsV1.BackfillRequested from the backfill stream. */
export function backfillRequestedHandler(backfill: Backfill) {
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
      },
      { working: context.working },
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
