import { eventsV1 } from '@calsync/proto';
import { publishTraced, type JetStreamClient, type NatsNames } from '@calsync/service-kit';

export interface DeadLetterInput {
  stream: string;
  streamSequence: number;
  originalSubject: string;
  originalData: Uint8Array;
  reason: string;
  deliveries: number;
}

export interface DeadLetters {
  /** Stores the message with why it was given up; resolves once JetStream has it. */
  send(input: DeadLetterInput): Promise<void>;
}

const maxReasonLength = 2_000;

export function createDeadLetters(deps: { js: JetStreamClient; names: NatsNames }): DeadLetters {
  return {
    async send(input) {
      const message = eventsV1.DeadLetter.encode({
        originalSubject: input.originalSubject,
        originalData: Buffer.from(input.originalData),
        reason: input.reason.slice(0, maxReasonLength),
        deliveries: input.deliveries,
        deadLetteredAt: new Date(),
        streamSequence: String(input.streamSequence),
      }).finish();
      // One dead letter per stored message, however many instances or retries try to send it.
      await publishTraced(deps.js, deps.names.deadLetterSubject(input.originalSubject), message, {
        msgID: `${input.stream}:${input.streamSequence}`,
      });
    },
  };
}

/**
 * Dead letters of the events stream, each also written to the delivery log of the user it was
 * for, so the user sees what became of it. The dead letter is stored first: a failure to log it
 * loses a log row, never the message.
 */
export function loggedDeadLetters(
  deadLetters: DeadLetters,
  record: (entry: { userId: string; deliveryKey: string; eventType: string; receivedAt: Date }) => Promise<void>,
  onLogFailed: (error: unknown) => void,
): DeadLetters {
  return {
    async send(input) {
      await deadLetters.send(input);
      let event: eventsV1.CalendlyEvent;
      try {
        event = eventsV1.CalendlyEvent.decode(input.originalData);
      } catch {
        return; // Not a CalendlyEvent at all: nobody to tell.
      }
      const { userId, deliveryKey, eventType, receivedAt } = event;
      // Only a delivery the gateway stored names a user worth a log row; the applier's own bounds.
      if (!userId || userId.length > 256 || !deliveryKey || deliveryKey.length > 1024 || !receivedAt) return;
      await record({ userId, deliveryKey, eventType: eventType.slice(0, 200), receivedAt }).catch(onLogFailed);
    },
  };
}
