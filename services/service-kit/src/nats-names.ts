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
  /** The change feed: meetings' MeetingChanged events, one subject per platform user. */
  meetingsChangedStream: string;
  meetingsChangedSubjects: string;
  meetingsChangedSubject(userId: string): string;
}

/**
 * A platform user id as one subject token. User ids are the platform's own strings, so every
 * character a subject cannot carry (and `%` itself) is percent-encoded: the mapping is one to
 * one, and ordinary ids (uuids, `user-42`) read unchanged.
 */
export function userSubjectToken(userId: string): string {
  if (!userId) throw new Error('a user id is required');
  return Array.from(Buffer.from(userId, 'utf8'))
    .map((byte) =>
      (byte >= 0x30 && byte <= 0x39) ||
      (byte >= 0x41 && byte <= 0x5a) ||
      (byte >= 0x61 && byte <= 0x7a) ||
      byte === 0x2d ||
      byte === 0x5f
        ? String.fromCharCode(byte)
        : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`,
    )
    .join('');
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
    meetingsChangedStream: `${streamBase}_MEETINGS_CHANGED`,
    meetingsChangedSubjects: `${prefix}.meetings.changed.>`,
    meetingsChangedSubject: (userId) => `${prefix}.meetings.changed.${userSubjectToken(userId)}`,
  };
}
