import { z } from 'zod';
import {
  calendlyClientEnv,
  commonEnv,
  env,
  grpcSecurityEnv,
  grpcServerEnv,
  loadConfig as loadEnv,
  postgresEnv,
  sealingEnv,
  withActiveSealingKey,
  withGrpcSecurity,
} from '@calsync/service-kit';

const defaultScopes = 'users:read webhooks:read webhooks:write scheduled_events:read';

export const configSchema = withGrpcSecurity(
  withActiveSealingKey(
    z
      .object({
        ...commonEnv,
        ...postgresEnv('identity'),
        ...grpcServerEnv(50051, 9101),
        ...grpcSecurityEnv,
        ...sealingEnv,
        CALENDLY_API_URL: env.url().default('https://api.calendly.com'),
        CALENDLY_AUTH_URL: env.url().default('https://auth.calendly.com'),
        /** Without them only personal access tokens can connect. */
        CALENDLY_CLIENT_ID: env.string().optional(),
        CALENDLY_CLIENT_SECRET: env.string().optional(),
        /** Space-separated scopes asked for on authorize; empty asks for none. */
        CALENDLY_OAUTH_SCOPES: z.string().trim().default(defaultScopes),
        ...calendlyClientEnv,
        /** Identity has always capped a retry wait at 5 s, below the client's default; kept so no service changes behaviour. */
        CALENDLY_MAX_RETRY_DELAY_MS: env.int(5_000),
        ACCESS_TOKEN_MIN_VALIDITY_SECONDS: env.int(300).pipe(z.number().max(7200)),
        OAUTH_STATE_TTL_SECONDS: env.int(600, 30).pipe(z.number().max(3600)),
        /** Calendly's limit on token requests per user per minute. */
        TOKEN_REQUESTS_PER_MINUTE: env.int(8, 1),
        /** How long a GetAccessToken waits for another replica's refresh of the same user. */
        REFRESH_LOCK_TIMEOUT_MS: env.int(30_000, 100),
        /** Rows re-sealed per transaction by `npm run rotate-keys`. */
        ROTATE_BATCH_SIZE: env.int(100, 1),
      })
      .superRefine((value, ctx) => {
        if (Boolean(value.CALENDLY_CLIENT_ID) !== Boolean(value.CALENDLY_CLIENT_SECRET)) {
          ctx.addIssue({
            code: 'custom',
            path: [value.CALENDLY_CLIENT_ID ? 'CALENDLY_CLIENT_SECRET' : 'CALENDLY_CLIENT_ID'],
            message: 'CALENDLY_CLIENT_ID and CALENDLY_CLIENT_SECRET are set together or not at all',
          });
        }
      }),
  ),
);

export type IdentityConfig = z.infer<typeof configSchema>;

/** Parses identity's environment; throws ConfigError naming every bad variable. */
export function loadIdentityConfig(source: Record<string, string | undefined> = process.env): IdentityConfig {
  return loadEnv(configSchema, source);
}
