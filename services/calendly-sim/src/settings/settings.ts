import { z } from 'zod';

/** How the simulator behaves where Calendly's behaviour is a choice, a limit or a timing. */
export interface SimulatorSettings {
  clientId: string;
  clientSecret: string;
  /** The OAuth app's webhook signing key ("for all webhooks related to your application"). */
  applicationSigningKey: string;
  /** Key for subscriptions created with an OAuth token: the application key, or the `signing_key` sent on create. */
  oauthSigningKeyMode: 'application' | 'supplied';
  /** Scope of the 409 "Hook with this url already exists" (Calendly does not document it). */
  hookUrlUniqueness: 'user' | 'organization' | 'global';
  accessTokenTtlSeconds: number;
  tokenRequestsPerUserPerMinute: number;
  /** Paid plans; a free-plan user gets a tenth of it (500 -> 50), as Calendly's plans do. */
  apiRequestsPerUserPerMinute: number;
  /** Retry delay n is `baseMs * factor^(n-1)`; a message still failing `windowMs` after its first failure disables the subscription. */
  retry: { baseMs: number; factor: number; windowMs: number };
  /** Order in which a reschedule's two webhooks start (Calendly does not document it). */
  rescheduleOrder: 'random' | 'canceled_first' | 'created_first';
  deliveryTimeouts: { connectMs: number; readMs: number };
}

/** Calendly's own values; retry back-off is ours (Calendly documents only the 24 h window). */
export const defaultSettings: Readonly<SimulatorSettings> = Object.freeze({
  clientId: 'calsync-dev-client',
  clientSecret: 'calsync-dev-secret',
  applicationSigningKey: 'calsync-dev-application-signing-key',
  oauthSigningKeyMode: 'application',
  hookUrlUniqueness: 'global',
  accessTokenTtlSeconds: 7200,
  tokenRequestsPerUserPerMinute: 8,
  apiRequestsPerUserPerMinute: 500,
  retry: Object.freeze({ baseMs: 30_000, factor: 2, windowMs: 24 * 60 * 60 * 1000 }),
  rescheduleOrder: 'random',
  deliveryTimeouts: Object.freeze({ connectMs: 10_000, readMs: 15_000 }),
}) as Readonly<SimulatorSettings>;

const positiveInt = z.number().int().min(1);
const secret = z.string().min(1, 'must not be empty').max(1024);

/** A change to some settings; nested objects may be given in part. Unknown fields are refused. */
export const settingsPatchSchema = z
  .object({
    clientId: secret,
    clientSecret: secret,
    applicationSigningKey: secret,
    oauthSigningKeyMode: z.enum(['application', 'supplied']),
    hookUrlUniqueness: z.enum(['user', 'organization', 'global']),
    accessTokenTtlSeconds: positiveInt,
    tokenRequestsPerUserPerMinute: positiveInt,
    apiRequestsPerUserPerMinute: positiveInt,
    retry: z
      .object({ baseMs: positiveInt, factor: z.number().min(1).max(100), windowMs: z.number().int().min(0) })
      .partial()
      .strict(),
    rescheduleOrder: z.enum(['random', 'canceled_first', 'created_first']),
    deliveryTimeouts: z.object({ connectMs: positiveInt, readMs: positiveInt }).partial().strict(),
  })
  .partial()
  .strict();

export type SettingsPatch = z.infer<typeof settingsPatchSchema>;

/** A full, independent copy of `base` with `patch` applied (nested objects merged). */
export function mergeSettings(base: Readonly<SimulatorSettings>, patch: SettingsPatch): SimulatorSettings {
  return {
    ...base,
    ...patch,
    retry: { ...base.retry, ...patch.retry },
    deliveryTimeouts: { ...base.deliveryTimeouts, ...patch.deliveryTimeouts },
  };
}

/** Replaces every field of `target` in place, so holders of the object see the change at once. */
export function replaceSettings(target: SimulatorSettings, next: SimulatorSettings): void {
  Object.assign(target, next, { retry: { ...next.retry }, deliveryTimeouts: { ...next.deliveryTimeouts } });
}

/** The settings as the control API shows them: the client secret and application key withheld. */
export function publicSettings(settings: SimulatorSettings): Record<string, unknown> {
  return { ...settings, clientSecret: '[redacted]', applicationSigningKey: '[redacted]' };
}
