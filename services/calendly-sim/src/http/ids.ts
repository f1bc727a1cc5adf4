import { createHmac, randomBytes, randomUUID } from 'node:crypto';

export const newUuid = (): string => randomUUID();

/** An opaque secret: codes, refresh tokens. */
export const opaqueToken = (bytes = 32): string => randomBytes(bytes).toString('base64url');

const tokenSecret = randomBytes(32);
const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

/**
 * Calendly's access tokens and personal access tokens are JWTs several hundred characters long;
 * ours have the same shape and length so storage sized for short opaque tokens fails here too.
 * They are looked up, never verified, so the signature is only there for the length.
 */
export function jwtShapedToken(claims: Record<string, unknown>): string {
  const unsigned = `${b64({ kid: 'sim', typ: 'JWT', alg: 'HS256' })}.${b64({ ...claims, jti: randomUUID() })}`;
  return `${unsigned}.${createHmac('sha256', tokenSecret).update(unsigned).digest('base64url')}`;
}

const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * The uuid a reference names: the uuid itself, or a resource URI whose path ends
 * `/<collection>/<uuid>` (any host, so URIs survive a change of public base URL).
 */
export function uuidOf(reference: string, collection: string): string | undefined {
  if (uuidPattern.test(reference)) return reference.toLowerCase();
  let path: string;
  try {
    path = new URL(reference).pathname;
  } catch {
    return undefined;
  }
  const parts = path.split('/').filter(Boolean);
  const last = parts[parts.length - 1];
  if (parts.length >= 2 && parts[parts.length - 2] === collection && last && uuidPattern.test(last)) {
    return last.toLowerCase();
  }
  return undefined;
}
