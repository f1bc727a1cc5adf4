import { eventsV1 } from '@calsync/proto';
import {
  pageSizeOf,
  publishTraced,
  type JetStreamClient,
  type JetStreamManager,
  type NatsNames,
} from '@calsync/service-kit';

/** A dead letter as operators see it: why it was given up and whose it was, never its payload. */
export interface DeadLetterSummary {
  sequence: number;
  originalSubject: string;
  reason: string;
  deliveries: number;
  deadLetteredAt?: Date;
  userId: string;
  eventType: string;
  deliveryKey: string;
}

/** A dead-letter query that cannot be answered as asked; the message names what is wrong. */
export class DeadLetterQueryInvalid extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DeadLetterQueryInvalid';
  }
}

export interface DeadLetterReplay {
  list(query: { pageSize?: number; cursor?: string; userId?: string }): Promise<{
    deadLetters: DeadLetterSummary[];
    nextCursor: string;
  }>;
  /** Replays the given sequences, or every dead letter matching `userId` (all of them when undefined). */
  replay(target: { sequences: number[] } | { userId?: string }): Promise<{ replayed: number; notFound: number }>;
}

const pageBounds = { defaultSize: 50, maxSize: 200 };
const maxPageSize = pageBounds.maxSize;
// Replayed letters leave gaps; one call looks at this many sequences per asked-for row at most.
const scanFactor = 20;

function summarize(sequence: number, data: Uint8Array): { summary: DeadLetterSummary; letter: eventsV1.DeadLetter } {
  const letter = eventsV1.DeadLetter.decode(data);
  let event: Partial<eventsV1.CalendlyEvent> = {};
  try {
    event = eventsV1.CalendlyEvent.decode(letter.originalData);
  } catch {
    // Not a CalendlyEvent (a backfill request, or the malformed message it was given up for).
  }
  return {
    letter,
    summary: {
      sequence,
      originalSubject: letter.originalSubject,
      reason: letter.reason,
      deliveries: letter.deliveries,
      ...(letter.deadLetteredAt ? { deadLetteredAt: letter.deadLetteredAt } : {}),
      userId: event.userId ?? '',
      eventType: event.eventType ?? '',
      deliveryKey: event.deliveryKey ?? '',
    },
  };
}

/**
 * Lists and replays the dead-letter stream. A replay publishes the original bytes back on
 * their original subject (the normal path: the consumer applies them, idempotently by delivery
 * key) and then deletes the dead letter, so a second replay finds nothing to do.
 */
export function createDeadLetterReplay(deps: {
  js: JetStreamClient;
  jsm: JetStreamManager;
  names: NatsNames;
}): DeadLetterReplay {
  const stream = deps.names.deadLetterStream;

  async function read(sequence: number) {
    const stored = await deps.jsm.streams.getMessage(stream, { seq: sequence }).catch(() => undefined);
    return stored ? summarize(sequence, stored.data) : undefined;
  }

  async function page(after: number, limit: number, userId?: string) {
    const { state } = await deps.jsm.streams.info(stream);
    const found: { summary: DeadLetterSummary; letter: eventsV1.DeadLetter }[] = [];
    let sequence = Math.max(after + 1, state.first_seq);
    const scanEnd = Math.min(state.last_seq, sequence + limit * scanFactor - 1);
    for (; sequence <= scanEnd && found.length < limit; sequence++) {
      const entry = await read(sequence);
      if (entry && (userId === undefined || entry.summary.userId === userId)) found.push(entry);
    }
    const last = sequence - 1;
    return { found, nextCursor: last < state.last_seq && state.messages > 0 ? String(last) : '' };
  }

  async function replayOne(entry: { summary: DeadLetterSummary; letter: eventsV1.DeadLetter }) {
    // A message id of its own: the original's would fall in the events stream's duplicate window.
    await publishTraced(deps.js, entry.letter.originalSubject, entry.letter.originalData, {
      msgID: `replay:${stream}:${entry.summary.sequence}`,
    });
    await deps.jsm.streams.deleteMessage(stream, entry.summary.sequence);
  }

  return {
    async list(query) {
      const pageSize = pageSizeOf(query.pageSize, pageBounds, (message) => new DeadLetterQueryInvalid(message));
      const cursor = query.cursor ?? '';
      if (cursor && !/^\d{1,15}$/.test(cursor)) throw new DeadLetterQueryInvalid('cursor is not one this API returned');
      const result = await page(cursor ? Number(cursor) : 0, pageSize, query.userId);
      return { deadLetters: result.found.map((entry) => entry.summary), nextCursor: result.nextCursor };
    },
    async replay(target) {
      if ('sequences' in target) {
        if (target.sequences.length > maxPageSize)
          throw new DeadLetterQueryInvalid(`at most ${maxPageSize} sequences at once`);
        let replayed = 0;
        let notFound = 0;
        for (const sequence of new Set(target.sequences)) {
          const entry = await read(sequence);
          if (!entry) notFound++;
          else {
            await replayOne(entry);
            replayed++;
          }
        }
        return { replayed, notFound };
      }
      let replayed = 0;
      let after = 0;
      for (;;) {
        const result = await page(after, maxPageSize, target.userId);
        for (const entry of result.found) await replayOne(entry);
        replayed += result.found.length;
        if (!result.nextCursor) return { replayed, notFound: 0 };
        after = Number(result.nextCursor);
      }
    },
  };
}
