import {
  commonEnv,
  env,
  eventsStreamDefaults,
  grpcSecurityEnv,
  grpcTarget,
  loadConfig,
  natsEnv,
  withGrpcSecurity,
} from '@calsync/service-kit';
import { z } from 'zod';
import { productionJwtSecretProblem } from './auth/jwt-secret-policy';

const hostPortPattern = /^[A-Za-z0-9.-]+:\d{1,5}$|^\[[0-9A-Fa-f:]+\]:\d{1,5}$/;
/** `host:port`, or a comma-separated list of `ip:port` that calls are spread over (grpcTarget). */
const grpcAddress = () =>
  z
    .string()
    .trim()
    .superRefine((value, ctx) => {
      if (!value.split(',').every((entry) => hostPortPattern.test(entry.trim())))
        return ctx.addIssue({ code: 'custom', message: 'must be host:port or a comma-separated list of ip:port' });
      try {
        grpcTarget(value);
      } catch (error) {
        ctx.addIssue({ code: 'custom', message: (error as Error).message });
      }
    });

const optionalString = () =>
  z
    .string()
    .trim()
    .optional()
    .transform((value) => (value ? value : undefined));

const optionalUrl = () =>
  optionalString().pipe(z.string().url('must be a URL').optional()) as z.ZodType<string | undefined>;

/** Comma-separated values, blanks dropped. */
const list = () =>
  z
    .string()
    .optional()
    .transform((value) =>
      (value ?? '')
        .split(',')
        .map((part) => part.trim())
        .filter(Boolean),
    );

const origins = () =>
  list().superRefine((values, ctx) => {
    for (const value of values) {
      let parsed: URL | undefined;
      try {
        parsed = new URL(value);
      } catch {
        parsed = undefined;
      }
      if (!parsed || parsed.origin !== value) {
        ctx.addIssue({ code: 'custom', message: `"${value}" is not an origin like https://app.example.com` });
      }
    }
  });

const schema = withGrpcSecurity(
  z
    .object({
      ...commonEnv,
      ...natsEnv,
      ...grpcSecurityEnv,
      HTTP_HOST: z.string().default('0.0.0.0'),
      HTTP_PORT: env.port(8080),
      /**
       * How long an idle keep-alive connection stays open. Longer than the idle timeout of the
       * load balancer or client in front (60 s on the common cloud ones, 4 s in Node's fetch), so
       * it is always the peer that closes an idle connection, never the gateway just as the peer
       * sends a request on it (which the peer sees as a reset).
       */
      HTTP_KEEP_ALIVE_TIMEOUT_MS: env.int(65_000, 1_000),
      /** Where browsers and Calendly reach this gateway, e.g. https://calsync.example.com. */
      PUBLIC_BASE_URL: env.url().transform((value) => value.replace(/\/+$/, '')),
      /** Where the OAuth callback sends the browser back to, with ?calendly=connected|error. */
      APP_URL: env.url(),
      OAUTH_REDIRECT_URI: optionalUrl(),
      IDENTITY_ADDR: grpcAddress(),
      SUBSCRIPTION_ADDR: grpcAddress(),
      MEETINGS_ADDR: grpcAddress(),
      AUTH_JWT_SECRET: optionalString().pipe(
        z.string().min(32, 'must be at least 32 characters (HS256 needs a strong key)').optional(),
      ) as z.ZodType<string | undefined>,
      AUTH_JWKS_URL: optionalUrl(),
      AUTH_JWT_ISSUER: optionalString(),
      /** Tokens issued (`iat`) longer ago than this are refused, whatever their `exp` says. */
      AUTH_JWT_MAX_AGE_SECONDS: env.int(3600, 1),
      /** `production` (the container image's) holds AUTH_JWT_SECRET to the production rules. */
      NODE_ENV: optionalString(),
      AUTH_JWT_AUDIENCE: list(),
      /**
       * Signs the short-lived tokens that open a user's meeting events stream (browsers cannot send a
       * header with EventSource). Set the same value on every replica; unset, each replica makes its own.
       */
      STREAM_TOKEN_SECRET: optionalString().pipe(
        z.string().min(32, 'must be at least 32 characters').optional(),
      ) as z.ZodType<string | undefined>,
      /** How long a stream token may be used to open (or reopen) the stream. */
      STREAM_TOKEN_TTL_SECONDS: env.int(300, 10).pipe(z.number().max(3600, 'must be at most 3600')),
      /** NATS refuses messages over its max_payload (1 MiB by default): the body must fit in one with its envelope. */
      WEBHOOK_MAX_BODY_BYTES: env.int(512 * 1024, 1024),
      /** Each delivery's verify deadline, on the stream as on a unary call. */
      VERIFY_TIMEOUT_MS: env.int(2_000, 50),
      /** `stream`: deliveries batched onto one VerifyDeliveries stream; `unary`: one VerifyAndResolveUser each. */
      VERIFY_TRANSPORT: z.enum(['stream', 'unary']).default('stream'),
      PUBLISH_TIMEOUT_MS: env.int(5_000, 50),
      /** Deadline of the user API's calls to identity, subscription and meetings (some reach Calendly). */
      UPSTREAM_TIMEOUT_MS: env.int(10_000, 50),
      EVENTS_STREAM_MAX_AGE_SECONDS: env.int(eventsStreamDefaults.maxAgeSeconds, 1),
      /** -1: no byte limit (max age still applies). */
      EVENTS_STREAM_MAX_BYTES: env.int(eventsStreamDefaults.maxBytes, -1),
      /** Calendly retries within seconds to minutes; JetStream drops a repeated msg id inside this window. */
      EVENTS_STREAM_DUPLICATE_WINDOW_SECONDS: env.int(eventsStreamDefaults.duplicateWindowSeconds, 120),
      CORS_ORIGINS: origins(),
      /** A folder served at /demo; unset: no /demo route. */
      DEMO_DIR: optionalString(),
    })
    .superRefine((value, ctx) => {
      if (!value.AUTH_JWT_SECRET === !value.AUTH_JWKS_URL) {
        ctx.addIssue({
          code: 'custom',
          path: [value.AUTH_JWT_SECRET ? 'AUTH_JWKS_URL' : 'AUTH_JWT_SECRET'],
          message: value.AUTH_JWT_SECRET
            ? 'set only one of AUTH_JWT_SECRET and AUTH_JWKS_URL'
            : 'is required (or AUTH_JWKS_URL)',
        });
      }
      const secretProblem =
        value.NODE_ENV === 'production' && value.AUTH_JWT_SECRET
          ? productionJwtSecretProblem(value.AUTH_JWT_SECRET)
          : undefined;
      if (secretProblem) {
        ctx.addIssue({ code: 'custom', path: ['AUTH_JWT_SECRET'], message: `${secretProblem} (NODE_ENV=production)` });
      }
      if (value.EVENTS_STREAM_DUPLICATE_WINDOW_SECONDS > value.EVENTS_STREAM_MAX_AGE_SECONDS) {
        ctx.addIssue({
          code: 'custom',
          path: ['EVENTS_STREAM_DUPLICATE_WINDOW_SECONDS'],
          message: 'must not exceed EVENTS_STREAM_MAX_AGE_SECONDS',
        });
      }
    }),
);

export type GatewayConfig = z.infer<typeof schema>;

/** The gateway's configuration from the environment; throws ConfigError naming every bad variable. */
export function loadGatewayConfig(environment: Record<string, string | undefined> = process.env): GatewayConfig {
  return loadConfig(schema, environment);
}

/** Where Calendly sends the browser back after authorize. */
export function oauthRedirectUri(config: Pick<GatewayConfig, 'OAUTH_REDIRECT_URI' | 'PUBLIC_BASE_URL'>): string {
  return config.OAUTH_REDIRECT_URI ?? `${config.PUBLIC_BASE_URL}/api/calendly/oauth/callback`;
}
