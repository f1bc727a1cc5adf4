import { z } from 'zod';
import type { GrpcSecurity } from './grpc-security';

/** One configuration problem, named by the environment variable that caused it. */
export interface ConfigProblem {
  variable: string;
  problem: string;
}

/** Thrown at start-up when the environment does not satisfy a service's schema. */
export class ConfigError extends Error {
  constructor(readonly problems: ConfigProblem[]) {
    super(`invalid configuration: ${problems.map((p) => `${p.variable}: ${p.problem}`).join('; ')}`);
    this.name = 'ConfigError';
  }
}

/**
 * Parses the environment once with a schema whose keys are variable names; fails fast naming
 * every bad or missing variable. The only place in calsync that reads process.env.
 */
export function loadConfig<T>(schema: z.ZodType<T>, env: Record<string, string | undefined> = process.env): T {
  const result = schema.safeParse(env);
  if (result.success) return result.data;
  throw new ConfigError(
    result.error.issues.map((issue) => {
      const variable = issue.path.length > 0 ? String(issue.path[0]) : '(environment)';
      // zod 4 leaves issue.input unset, so "required" is decided by the variable's absence.
      const missing = issue.code === 'invalid_type' && issue.path.length > 0 && env[variable] === undefined;
      return { variable, problem: missing ? 'is required' : issue.message };
    }),
  );
}

/** Field builders for environment schemas: each parses the variable's string form. */
export const env = {
  string: () => z.string().trim().min(1, 'must not be empty'),
  url: () => z.string().trim().url('must be a URL'),
  port: (fallback: number) => z.coerce.number().int().min(0).max(65535).default(fallback),
  int: (fallback: number, min = 0) =>
    z.coerce
      .number({ error: 'must be a whole number' })
      .int('must be a whole number')
      .min(min, `must be at least ${min}`)
      .default(fallback),
  bool: (fallback: boolean) => z.stringbool().default(fallback),
  logLevel: () => z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  schemaName: (fallback: string) =>
    z
      .string()
      .regex(/^[a-z_][a-z0-9_]{0,62}$/, 'must be a lower-case Postgres identifier')
      .default(fallback),
  /** `kid=base64key,kid2=base64key`: every key 32 bytes (AES-256). */
  sealingKeys: () =>
    z
      .string()
      .trim()
      .min(1, 'is required')
      .transform((value, ctx) => {
        const keys = new Map<string, Buffer>();
        for (const entry of value
          .split(',')
          .map((part) => part.trim())
          .filter(Boolean)) {
          const separator = entry.indexOf('=');
          const id = entry.slice(0, separator);
          const key = Buffer.from(entry.slice(separator + 1), 'base64');
          if (separator <= 0 || !/^[A-Za-z0-9_-]{1,32}$/.test(id)) {
            ctx.addIssue({ code: 'custom', message: 'each entry must be <key id>=<base64 key>' });
            return z.NEVER;
          }
          if (key.length !== 32) {
            ctx.addIssue({ code: 'custom', message: `key "${id}" must decode to 32 bytes` });
            return z.NEVER;
          }
          keys.set(id, key);
        }
        return keys;
      }),
};

/** Variables every calsync service reads. */
export const commonEnv = {
  LOG_LEVEL: env.logLevel(),
  SHUTDOWN_TIMEOUT_MS: env.int(10_000, 100),
  /** How long health answers NOT_SERVING before a stopping server refuses new calls. */
  SHUTDOWN_DELAY_MS: env.int(0),
  /** Apply migrations and exit (a Kubernetes migration Job or init container). */
  MIGRATE_ONLY: env.bool(false),
};

/** Variables of a service that owns a Postgres schema. */
export const postgresEnv = (schema: string) => ({
  DATABASE_URL: env.url(),
  DATABASE_SCHEMA: env.schemaName(schema),
  DATABASE_POOL_MAX: env.int(10, 1),
});

/** Variables of a service that talks to NATS JetStream. */
export const natsEnv = {
  NATS_URL: env.string(),
  /** Copies of each stream calsync declares: 1 on a single server, 3 on a NATS cluster. */
  NATS_STREAM_REPLICAS: z.coerce.number().int().min(1).max(5).default(1),
  NATS_SUBJECT_PREFIX: z
    .string()
    .regex(/^[a-z][a-z0-9_-]{0,30}$/, 'must be a short lower-case token')
    .default('calsync'),
};

/** Variables of a service that serves gRPC (and its metrics over HTTP). */
export const grpcServerEnv = (grpcPort: number, metricsPort: number) => ({
  GRPC_HOST: z.string().default('0.0.0.0'),
  GRPC_PORT: env.port(grpcPort),
  METRICS_PORT: env.port(metricsPort),
});

/**
 * Variables of a service that serves or calls calsync gRPC: its certificate and key, and the CA
 * that signs every calsync certificate (PEM files, e.g. a mounted Secret, re-read every
 * GRPC_TLS_RELOAD_INTERVAL_MS). GRPC_PLAINTEXT=true turns authentication off; nothing else does.
 */
export const grpcSecurityEnv = {
  GRPC_TLS_CERT_FILE: env.string().optional(),
  GRPC_TLS_KEY_FILE: env.string().optional(),
  GRPC_TLS_CA_FILE: env.string().optional(),
  GRPC_TLS_RELOAD_INTERVAL_MS: env.int(30_000, 100),
  GRPC_PLAINTEXT: env.bool(false),
};

type GrpcSecurityVariables = z.infer<z.ZodObject<typeof grpcSecurityEnv>>;

const certificateVariables = ['GRPC_TLS_CERT_FILE', 'GRPC_TLS_KEY_FILE', 'GRPC_TLS_CA_FILE'] as const;

/** Checks that the certificate files are all named, unless plaintext is chosen explicitly (and then none is). */
export function withGrpcSecurity<T extends GrpcSecurityVariables>(schema: z.ZodType<T>): z.ZodType<T> {
  return schema.superRefine((value, ctx) => {
    for (const variable of certificateVariables) {
      if (value.GRPC_PLAINTEXT && value[variable])
        ctx.addIssue({ code: 'custom', path: [variable], message: 'must not be set with GRPC_PLAINTEXT=true' });
      if (!value.GRPC_PLAINTEXT && !value[variable])
        ctx.addIssue({
          code: 'custom',
          path: [variable],
          message: 'is required (internal gRPC uses mutual TLS; GRPC_PLAINTEXT=true only where the network is trusted)',
        });
    }
  }) as z.ZodType<T>;
}

/** The gRPC security a parsed configuration chose. */
export function grpcSecurityOf(config: GrpcSecurityVariables): GrpcSecurity {
  if (config.GRPC_PLAINTEXT) return { mode: 'plaintext' };
  return {
    mode: 'mtls',
    certFile: config.GRPC_TLS_CERT_FILE!,
    keyFile: config.GRPC_TLS_KEY_FILE!,
    caFile: config.GRPC_TLS_CA_FILE!,
    reloadIntervalMs: config.GRPC_TLS_RELOAD_INTERVAL_MS,
  };
}

/**
 * Variables of a service that calls Calendly through @calsync/calendly-client: the deadline of one
 * request and the retry budget. The defaults are the client's own; calendlyClientOptionsOf turns
 * the parsed values into the client's options.
 */
export const calendlyClientEnv = {
  CALENDLY_TIMEOUT_MS: env.int(10_000, 100),
  CALENDLY_MAX_RETRIES: env.int(2),
  CALENDLY_MAX_RETRY_DELAY_MS: env.int(10_000),
};

type CalendlyClientVariables = z.infer<z.ZodObject<typeof calendlyClientEnv>>;

/** The createCalendlyClient options (timeoutMs, maxRetries, maxRetryDelayMs) a parsed configuration chose. */
export function calendlyClientOptionsOf(config: CalendlyClientVariables): {
  timeoutMs: number;
  maxRetries: number;
  maxRetryDelayMs: number;
} {
  return {
    timeoutMs: config.CALENDLY_TIMEOUT_MS,
    maxRetries: config.CALENDLY_MAX_RETRIES,
    maxRetryDelayMs: config.CALENDLY_MAX_RETRY_DELAY_MS,
  };
}

/** Variables of a service that seals secrets at rest. */
export const sealingEnv = {
  SEALING_KEYS: env.sealingKeys(),
  SEALING_ACTIVE_KEY_ID: env.string(),
  /** `production` (the container image's) holds SEALING_KEYS to the production rules. */
  NODE_ENV: z.string().trim().optional(),
};

/**
 * Checks that the active sealing key id names one of the configured keys, and in production
 * that no key is one a person typed (see productionSealingKeyProblem).
 */
export function withActiveSealingKey<
  T extends { SEALING_KEYS: Map<string, Buffer>; SEALING_ACTIVE_KEY_ID: string; NODE_ENV?: string },
>(schema: z.ZodType<T>): z.ZodType<T> {
  return schema.superRefine((value, ctx) => {
    if (!value.SEALING_KEYS.has(value.SEALING_ACTIVE_KEY_ID)) {
      ctx.addIssue({
        code: 'custom',
        path: ['SEALING_ACTIVE_KEY_ID'],
        message: `names no key in SEALING_KEYS (${[...value.SEALING_KEYS.keys()].join(', ')})`,
      });
    }
    if (value.NODE_ENV !== 'production') return;
    for (const [id, key] of value.SEALING_KEYS) {
      const problem = productionSealingKeyProblem(key);
      if (problem)
        ctx.addIssue({
          code: 'custom',
          path: ['SEALING_KEYS'],
          message: `key "${id}" ${problem} (NODE_ENV=production)`,
        });
    }
  }) as z.ZodType<T>;
}

/**
 * Why a 32-byte sealing key must not protect production secrets, or undefined when it may.
 * Random bytes are almost never all printable (about 1 chance in 10^14), so a key that decodes
 * to text was typed by a person: the development defaults in this repository are such phrases,
 * and so is any passphrase. A key with few distinct bytes (zeros, a repeated pattern) is refused too.
 */
export function productionSealingKeyProblem(key: Buffer): string | undefined {
  const advice = 'generate one with `openssl rand -base64 32`';
  if (key.every((byte) => byte >= 0x20 && byte <= 0x7e))
    return `decodes to printable text, so it was typed rather than generated (the development defaults are such text); ${advice}`;
  if (new Set(key).size < 16) return `has too few distinct bytes to be random; ${advice}`;
  return undefined;
}
