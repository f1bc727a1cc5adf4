import type { TokenResponse } from '@calsync/calendly-client';

/**
 * When an access token was issued and when it expires. Issued is Calendly's `created_at`
 * unless that lies in our future (clock skew), so the expiry is never later than Calendly's.
 */
export function tokenLifetime(tokens: TokenResponse, nowMs: number): { issuedAt: Date; expiresAt: Date } {
  const issuedAtMs = Math.min(tokens.created_at * 1000, nowMs);
  return { issuedAt: new Date(issuedAtMs), expiresAt: new Date(issuedAtMs + tokens.expires_in * 1000) };
}
