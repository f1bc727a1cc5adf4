import { z } from 'zod';
import { commonEnv, env, loadConfig } from '@calsync/service-kit';
import type { SimulatorSettings } from './settings/settings';

/** The simulator's environment: where it listens, and each SimulatorSettings field as SIM_*. */
export const configSchema = z.object({
  LOG_LEVEL: commonEnv.LOG_LEVEL,
  SIM_HOST: z.string().trim().default('0.0.0.0'),
  SIM_PORT: env.port(8081),
  SIM_PUBLIC_URL: env.url().optional(),
  SIM_STATE_FILE: env.string().optional(),
  SIM_CLIENT_ID: env.string().optional(),
  SIM_CLIENT_SECRET: env.string().optional(),
  SIM_APPLICATION_SIGNING_KEY: env.string().optional(),
  SIM_OAUTH_SIGNING_KEY_MODE: z.enum(['application', 'supplied']).optional(),
  SIM_HOOK_URL_UNIQUENESS: z.enum(['user', 'organization', 'global']).optional(),
  SIM_ACCESS_TOKEN_TTL_SECONDS: z.coerce.number().int().min(1).optional(),
  SIM_TOKEN_REQUESTS_PER_USER_PER_MINUTE: z.coerce.number().int().min(1).optional(),
  SIM_API_REQUESTS_PER_USER_PER_MINUTE: z.coerce.number().int().min(1).optional(),
  SIM_RETRY_BASE_MS: z.coerce.number().int().min(1).optional(),
  SIM_RETRY_FACTOR: z.coerce.number().min(1).max(100).optional(),
  SIM_RETRY_WINDOW_MS: z.coerce.number().int().min(0).optional(),
  SIM_RESCHEDULE_ORDER: z.enum(['random', 'canceled_first', 'created_first']).optional(),
  SIM_DELIVERY_CONNECT_TIMEOUT_MS: z.coerce.number().int().min(1).optional(),
  SIM_DELIVERY_READ_TIMEOUT_MS: z.coerce.number().int().min(1).optional(),
});

export type SimConfig = z.infer<typeof configSchema>;

export function loadSimConfig(source: Record<string, string | undefined> = process.env): SimConfig {
  return loadConfig(configSchema, source);
}

const defined = <T extends object>(value: T): Partial<T> =>
  Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;

/** The settings the environment sets; the rest keep their defaults. */
export function settingsFromConfig(config: SimConfig): Partial<SimulatorSettings> {
  const retry = defined({
    baseMs: config.SIM_RETRY_BASE_MS,
    factor: config.SIM_RETRY_FACTOR,
    windowMs: config.SIM_RETRY_WINDOW_MS,
  });
  const deliveryTimeouts = defined({
    connectMs: config.SIM_DELIVERY_CONNECT_TIMEOUT_MS,
    readMs: config.SIM_DELIVERY_READ_TIMEOUT_MS,
  });
  return defined({
    clientId: config.SIM_CLIENT_ID,
    clientSecret: config.SIM_CLIENT_SECRET,
    applicationSigningKey: config.SIM_APPLICATION_SIGNING_KEY,
    oauthSigningKeyMode: config.SIM_OAUTH_SIGNING_KEY_MODE,
    hookUrlUniqueness: config.SIM_HOOK_URL_UNIQUENESS,
    accessTokenTtlSeconds: config.SIM_ACCESS_TOKEN_TTL_SECONDS,
    tokenRequestsPerUserPerMinute: config.SIM_TOKEN_REQUESTS_PER_USER_PER_MINUTE,
    apiRequestsPerUserPerMinute: config.SIM_API_REQUESTS_PER_USER_PER_MINUTE,
    rescheduleOrder: config.SIM_RESCHEDULE_ORDER,
    retry: Object.keys(retry).length > 0 ? (retry as SimulatorSettings['retry']) : undefined,
    deliveryTimeouts:
      Object.keys(deliveryTimeouts).length > 0
        ? (deliveryTimeouts as SimulatorSettings['deliveryTimeouts'])
        : undefined,
  });
}
