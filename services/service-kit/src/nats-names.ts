/**
 * The JetStream streams and subjects calsync uses, derived from one prefix so that tests (and
 * several installations on one NATS) never collide. The one place these names are spelled.
 */
export interface NatsNames {
  eventsStream: string;
  eventsSubjects: string;
  eventSubject(eventType: string): string;
  backfillStream: string;
  backfillSubject: string;
  deadLetterStream: string;
  deadLetterSubjects: string;
  deadLetterSubject(originalSubject: string): string;
}

export function natsNames(prefix = 'calsync'): NatsNames {
  const streamBase = prefix.toUpperCase().replace(/[^A-Z0-9]/g, '_');
  return {
    eventsStream: `${streamBase}_EVENTS`,
    eventsSubjects: `${prefix}.calendly.>`,
    eventSubject: (eventType) =>
      `${prefix}.calendly.${eventType.replace(/[^A-Za-z0-9_-]+/g, '.').replace(/^\.+|\.+$/g, '')}`,
    backfillStream: `${streamBase}_BACKFILL`,
    backfillSubject: `${prefix}.backfill.requested`,
    deadLetterStream: `${streamBase}_DEAD_LETTER`,
    deadLetterSubjects: `${prefix}.dlq.>`,
    deadLetterSubject: (originalSubject) => `${prefix}.dlq.${originalSubject}`,
  };
}
