import {
  calendlyClientEnv,
  commonEnv,
  env,
  grpcSecurityEnv,
  grpcServerEnv,
  loadConfig,
  natsEnv,
  postgresEnv,
  withGrpcSecurity,
} from '@calsync/service-kit';
import { z } from 'zod';

/** `1000,5000,15000`: the waits before the 2nd, 3rd, 4th... delivery of a failing message. */
const backoffList = () =>
  z
    .string()
    .trim()
    .default('1000,5000,15000')
    .transform((value, ctx) => {
      const delays = value.split(',').map((part) => Number(part.trim()));
      if (delays.length === 0 || delays.some((delay) => !Number.isInteger(delay) || delay < 0 || delay > 3_600_000)) {
        ctx.addIssue({ code: 'custom', message: 'must be comma-separated whole milliseconds (0..3600000)' });
        return z.NEVER;
      }
      return delays;
    });

export const configSchema = withGrpcSecurity(
  z.object({
    ...commonEnv,
    ...postgresEnv('meetings'),
    ...natsEnv,
    ...grpcServerEnv(50053, 9103),
    ...grpcSecurityEnv,
    IDENTITY_ADDR: env.string(),
    CALENDLY_API_URL: env.url().default('https://api.calendly.com'),
    CALENDLY_AUTH_URL: env.url().default('https://auth.calendly.com'),
    ...calendlyClientEnv,
    /** Durable name of the events consumer; the backfill consumer is `<name>-backfill`. */
    CONSUMER_DURABLE_NAME: z
      .string()
      .regex(/^[A-Za-z0-9_-]{1,48}$/, 'must be letters, digits, "_" or "-" (at most 48)')
      .default('meetings'),
    /** Deliveries of one message before it is dead-lettered: at least one retry. */
    CONSUMER_MAX_DELIVER: env.int(5, 2),
    CONSUMER_BACKOFF_MS: backoffList(),
    /** Messages pulled at a time, and in hand at once. */
    CONSUMER_BATCH_SIZE: env.int(50, 1).pipe(z.number().max(1000, 'must be at most 1000')),
    /**
     * Transactions one instance applies deliveries in at once, each with every delivery waiting
     * when it begins (meetings-applier.ts); a user's own deliveries apply one after another in
     * the order they arrived (consumer/handlers.ts).
     */
    CONSUMER_CONCURRENCY: env.int(4, 1).pipe(z.number().max(64, 'must be at most 64')),
    /** How long a delivered message may stay unacknowledged before JetStream hands it to another instance. */
    CONSUMER_ACK_WAIT_MS: env.int(30_000, 500),
    /** Days an applied delivery key is kept to recognise a redelivery; 0 keeps them for ever. */
    INBOX_RETENTION_DAYS: env.int(30, 0),
    /** Backfills (imports) one instance runs at once, each for another user, beside the deliveries. */
    IMPORT_CONCURRENCY: env.int(4, 1).pipe(z.number().max(64, 'must be at most 64')),
    /** Share of each user's per-minute Calendly budget an import leaves for calsync's other calls. */
    IMPORT_RATE_RESERVE_PERCENT: env.int(20, 0).pipe(z.number().max(90, 'must be at most 90')),
    /** Days the delivery log keeps a received delivery (what users and operators look back at); 0 keeps them for ever. */
    DELIVERY_LOG_RETENTION_DAYS: env.int(14, 0),
    /** Hours the change feed keeps a MeetingChanged: how long a watcher can be away and still resume. */
    FEED_RETENTION_HOURS: env.int(168, 1),
  }),
);

export type MeetingsConfig = z.infer<typeof configSchema>;

/** The service's configuration from the environment; throws ConfigError naming every bad variable. */
export function loadMeetingsConfig(source: Record<string, string | undefined> = process.env): MeetingsConfig {
  return loadConfig(configSchema, source);
}
