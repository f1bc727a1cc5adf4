import { createHash, timingSafeEqual } from 'node:crypto';

/**
 * The cookie that binds an OAuth connect to the browser that started it (login-CSRF defence).
 * It holds a digest of the single-use state, so it is worthless without the state and says
 * nothing about it; the callback completes only when the browser brings the cookie of the state
 * it carries. HttpOnly (no script reads it), SameSite=Lax (sent on the top-level navigation back
 * from Calendly, never on cross-site subrequests), and over HTTPS `__Host-` and Secure, so no
 * sibling subdomain can plant one.
 */
export interface ConnectCookie {
  readonly name: string;
  /** The Set-Cookie header for a connect whose state expires at `expiresAt`. */
  issue(state: string, expiresAt: Date, now?: Date): string;
  /** The Set-Cookie header that deletes it. */
  clear(): string;
  /** Whether `value` (the cookie the callback brought) was issued for `state`. */
  matches(value: string | undefined, state: string): boolean;
}

const digest = (state: string) => createHash('sha256').update(state).digest();

export function createConnectCookie(publicBaseUrl: string): ConnectCookie {
  const secure = new URL(publicBaseUrl).protocol === 'https:';
  const name = secure ? '__Host-calsync-connect' : 'calsync-connect';
  const attributes = `Path=/; %MAX_AGE%; HttpOnly; SameSite=Lax${secure ? '; Secure' : ''}`;
  const header = (value: string, maxAgeSeconds: number) =>
    `${name}=${value}; ${attributes.replace('%MAX_AGE%', `Max-Age=${maxAgeSeconds}`)}`;
  return {
    name,
    issue(state, expiresAt, now = new Date()) {
      const seconds = Math.max(1, Math.floor((expiresAt.getTime() - now.getTime()) / 1000));
      return header(digest(state).toString('base64url'), seconds);
    },
    clear: () => header('', 0),
    matches(value, state) {
      if (!value || !/^[A-Za-z0-9_-]{43}$/.test(value)) return false;
      return timingSafeEqual(Buffer.from(value, 'base64url'), digest(state));
    },
  };
}
