import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { AuthError } from './jwt-verifier';

/** A short-lived credential that opens one user's change stream and nothing else. */
export interface StreamTokens {
  issue(userId: string): { token: string; expiresAt: Date };
  /** The user the token was issued to; AuthError when it is not a valid, unexpired stream token. */
  verify(token: string): string;
}

const purpose = 'meetings-events';
const tokenPattern = /^st1\.([A-Za-z0-9_-]{1,1024})\.([A-Za-z0-9_-]{43})$/;

/**
 * Stream tokens exist because a browser's EventSource cannot send an Authorization header: the
 * page trades its JWT for one (POST, with the header) and puts it in the stream's URL. They are
 * not JWTs and are signed with a key of their own, so one can never pass for the platform's JWT
 * (nor a JWT for one), they expire within minutes, and they open only the events stream of the
 * user they name. Without a configured secret each gateway replica makes its own, so a token then
 * only opens a stream on the replica that issued it.
 */
export function createStreamTokens(options: { secret?: string; ttlSeconds: number; now?: () => number }): StreamTokens {
  const key = options.secret ? Buffer.from(options.secret, 'utf8') : randomBytes(32);
  const now = options.now ?? Date.now;
  const sign = (body: string) => createHmac('sha256', key).update(`${purpose}.${body}`).digest('base64url');
  return {
    issue(userId) {
      const expiresAt = new Date(now() + options.ttlSeconds * 1000);
      const body = Buffer.from(JSON.stringify({ sub: userId, exp: Math.floor(expiresAt.getTime() / 1000) })).toString(
        'base64url',
      );
      return { token: `st1.${body}.${sign(body)}`, expiresAt };
    },
    verify(token) {
      const match = tokenPattern.exec(token);
      if (!match) throw new AuthError('invalid', 'not a stream token');
      const [, body, signature] = match as unknown as [string, string, string];
      const expected = Buffer.from(sign(body));
      if (!timingSafeEqual(expected, Buffer.from(signature))) throw new AuthError('invalid', 'stream token signature');
      let claims: { sub?: unknown; exp?: unknown };
      try {
        claims = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as typeof claims;
      } catch {
        throw new AuthError('invalid', 'stream token is malformed');
      }
      if (typeof claims.sub !== 'string' || !claims.sub || typeof claims.exp !== 'number')
        throw new AuthError('invalid', 'stream token is malformed');
      if (claims.exp * 1000 <= now()) throw new AuthError('invalid', 'stream token expired');
      return claims.sub;
    },
  };
}
