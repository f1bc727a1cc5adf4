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
