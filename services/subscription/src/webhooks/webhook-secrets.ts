import { randomBytes } from 'node:crypto';

/** Bytes of randomness in a hook id: 192 bits, well past guessing, 32 URL-safe characters. */
const hookIdBytes = 24;
/** Bytes of randomness in a per-subscription signing key (HMAC-SHA256 wants at least 32). */
const signingKeyBytes = 32;

const hookIdPattern = /^[A-Za-z0-9_-]{22,64}$/;

/** A fresh, unguessable, URL-safe id for a callback path. */
export function newHookId(): string {
  return randomBytes(hookIdBytes).toString('base64url');
}

/**
 * A fresh signing key. Calendly uses the key string itself as the HMAC key, so it is kept as
 * the base64url text it is sent as.
 */
export function newSigningKey(): string {
  return randomBytes(signingKeyBytes).toString('base64url');
}

/** True when `value` could be a hook id we issued; anything else is refused without a lookup. */
export function isWellFormedHookId(value: string): boolean {
  return hookIdPattern.test(value);
}

/** The path every per-user callback URL shares, under the public base URL. */
export const callbackPathPrefix = '/webhooks/calendly/';

/** The seed's single callback path, still served for subscriptions created before per-user URLs. */
export const legacyCallbackPath = '/api/calendly/webhook';

/** The callback URL of a hook. */
export function callbackUrlOf(publicBaseUrl: string, hookId: string): string {
  return `${publicBaseUrl}${callbackPathPrefix}${hookId}`;
}

/** The hook id in one of our callback URLs, or undefined for any other URL. */
export function hookIdOfCallbackUrl(publicBaseUrl: string, url: string): string | undefined {
  const prefix = `${publicBaseUrl}${callbackPathPrefix}`;
  if (!url.startsWith(prefix)) return undefined;
  const hookId = url.slice(prefix.length);
  return isWellFormedHookId(hookId) ? hookId : undefined;
}
