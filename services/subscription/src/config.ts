import { z } from 'zod';
import {
  calendlyClientEnv,
  commonEnv,
  env,
  grpcSecurityEnv,
  grpcServerEnv,
  loadConfig,
  natsEnv,
  postgresEnv,
  sealingEnv,
  withActiveSealingKey,
  withGrpcSecurity,
} from '@calsync/service-kit';

const baseUrl = () =>
  env
    .url()
    .refine((value) => /^https?:\/\//.test(value), 'must be an http(s) URL')
    .transform((value) => value.replace(/\/+$/, ''));

/** What every entry point of this service needs: its database, its secrets and its peers. */
const coreFields = {
  ...commonEnv,
  ...postgresEnv('subscription'),
  ...sealingEnv,
  ...grpcSecurityEnv,
  IDENTITY_ADDR: env.string(),
  CALENDLY_API_URL: baseUrl().default('https://api.calendly.com'),
  CALENDLY_AUTH_URL: baseUrl().default('https://auth.calendly.com'),
  ...calendlyClientEnv,
  /** Callback URLs are `<PUBLIC_BASE_URL>/webhooks/calendly/<hookId>`. */
  PUBLIC_BASE_URL: baseUrl(),
  /** The OAuth application's webhook signing key; required once any OAuth connection subscribes. */
  CALENDLY_WEBHOOK_SIGNING_KEY: z.string().trim().min(1).optional(),
  /** Whether Calendly signs OAuth-created subscriptions with the key we send (undocumented). */
  CALENDLY_OAUTH_HONOURS_SIGNING_KEY: env.bool(false),
};

const serviceSchema = withGrpcSecurity(
  withActiveSealingKey(
    z
      .object({
        ...coreFields,
        ...natsEnv,
        ...grpcServerEnv(50052, 9102),
        /** meetings, for the import's progress in GetSyncState (meetings never calls subscription). */
        MEETINGS_ADDR: env.string(),
        SIGNATURE_TOLERANCE_SECONDS: env.int(180, 1),
        RECONCILE_INTERVAL_SECONDS: env.int(300, 0),
        RECONCILE_CONCURRENCY: env.int(8, 1),
        /** How far past a delivery gap a backfill reaches: meetings booked in the gap may start weeks later. */
        BACKFILL_HORIZON_DAYS: env.int(90, 1),
        /** How far back the import on connect reaches (meetings that started in the last N days). */
        IMPORT_PAST_DAYS: env.int(90, 0),
        /** How far ahead the import on connect reaches: Calendly books at most a couple of years out. */
        IMPORT_FUTURE_DAYS: env.int(730, 1).pipe(z.number().max(1460, 'must be at most 1460')),
        /** How often a polled user's near window is fetched (README: Polling). */
        POLL_INTERVAL_SECONDS: env.int(240, 1),
        /** The freshness promised for a polled user's near window; must exceed the interval. */
        POLL_FRESHNESS_SECONDS: env.int(300, 1),
        /** The near window reaches this many days ahead. */
        POLL_NEAR_DAYS: env.int(14, 1),
        /** How often a polled user's whole horizon (to IMPORT_FUTURE_DAYS) is fetched. */
        POLL_SWEEP_INTERVAL_SECONDS: env.int(3600, 1),
        /** A sweep reaches this many days back (no-shows of past meetings). */
        POLL_SWEEP_PAST_DAYS: env.int(7, 1),
      })
      .superRefine((value, ctx) => {
        if (value.POLL_FRESHNESS_SECONDS <= value.POLL_INTERVAL_SECONDS) {
          ctx.addIssue({
            code: 'custom',
            path: ['POLL_FRESHNESS_SECONDS'],
            message: `must be more than POLL_INTERVAL_SECONDS (${value.POLL_INTERVAL_SECONDS}): a poll takes time`,
          });
        }
        if (value.POLL_SWEEP_INTERVAL_SECONDS < value.POLL_INTERVAL_SECONDS) {
          ctx.addIssue({
            code: 'custom',
            path: ['POLL_SWEEP_INTERVAL_SECONDS'],
            message: `must be at least POLL_INTERVAL_SECONDS (${value.POLL_INTERVAL_SECONDS})`,
          });
        }
        // Each reconcile worker holds one connection for its user lock; verification needs some left.
        if (value.DATABASE_POOL_MAX < value.RECONCILE_CONCURRENCY + 2) {
          ctx.addIssue({
            code: 'custom',
            path: ['DATABASE_POOL_MAX'],
            message: `must be at least RECONCILE_CONCURRENCY + 2 (${value.RECONCILE_CONCURRENCY + 2})`,
          });
        }
      }),
  ),
);

export type SubscriptionConfig = z.infer<typeof serviceSchema>;

/** The service's configuration, parsed once; throws a ConfigError naming every bad variable. */
export function loadSubscriptionConfig(source?: Record<string, string | undefined>): SubscriptionConfig {
  return loadConfig(serviceSchema, source);
}

const commandSchema = withGrpcSecurity(withActiveSealingKey(z.object(coreFields)));

export type CommandConfig = z.infer<typeof commandSchema>;

/** The configuration of the one-off commands (no servers, no NATS). */
export function loadCommandConfig(source?: Record<string, string | undefined>): CommandConfig {
  return loadConfig(commandSchema, source);
}
