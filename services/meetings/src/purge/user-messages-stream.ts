import { eventsV1 } from '@calsync/proto';
import {
  eraseMatchingMessages,
  type JetStreamClient,
  type JetStreamManager,
  type NatsNames,
} from '@calsync/service-kit';
import type { UserMessages } from './user-purge';

type Decoder = { decode(bytes: Uint8Array): { userId: string } };

function userOf(decoder: Decoder, data: Uint8Array): string | undefined {
  try {
    return decoder.decode(data).userId;
  } catch {
    return undefined;
  }
}

/**
 * The user's messages in calsync's streams. The change feed has a subject per user, so it is
 * purged by subject. Deliveries (`<prefix>.calendly.<event>`), backfill requests and dead
 * letters carry the user only inside the message, so each of those streams is read once and
 * the user's messages are erased one by one (see the kit's eraseMatchingMessages).
 */
export function createStreamUserMessages(deps: {
  js: JetStreamClient;
  jsm: JetStreamManager;
  names: NatsNames;
}): UserMessages {
  const { js, jsm, names } = deps;
  const decoderFor = (subject: string): Decoder =>
    subject === names.backfillSubject ? eventsV1.BackfillRequested : eventsV1.CalendlyEvent;
  const deadLetterUser = (data: Uint8Array) => {
    try {
      const letter = eventsV1.DeadLetter.decode(data);
      return userOf(decoderFor(letter.originalSubject), letter.originalData);
    } catch {
      return undefined;
    }
  };
  return {
    async eraseInputs(userId) {
      const events = await eraseMatchingMessages(
        js,
        jsm,
        names.eventsStream,
        (_subject, data) => userOf(eventsV1.CalendlyEvent, data) === userId,
      );
      const backfills = await eraseMatchingMessages(
        js,
        jsm,
        names.backfillStream,
        (_subject, data) => userOf(eventsV1.BackfillRequested, data) === userId,
      );
      const deadLetters = await eraseMatchingMessages(
        js,
        jsm,
        names.deadLetterStream,
        (_subject, data) => deadLetterUser(data) === userId,
      );
      return events + backfills + deadLetters;
    },
    async eraseFeed(userId) {
      try {
        const { purged } = await jsm.streams.purge(names.meetingsChangedStream, {
          filter: names.meetingsChangedSubject(userId),
        });
        return purged;
      } catch (error) {
        if (/stream not found/i.test(String(error))) return 0;
        throw error;
      }
    },
  };
}
