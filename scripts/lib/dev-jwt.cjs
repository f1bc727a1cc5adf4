'use strict';
// Signs HS256 JWTs for demo and test users with the gateway's dev secret. Never for production:
// there, tokens come from the platform's own identity provider.
const { createHmac } = require('node:crypto');

/** How long dev tokens live; the gateway `npm run dev` starts accepts tokens this old (AUTH_JWT_MAX_AGE_SECONDS). */
const devJwtTtlSeconds = 7 * 24 * 3600;

/** A JWT whose `sub` is the platform user id, valid for `ttlSeconds`. */
function signDevJwt(sub, secret, ttlSeconds = devJwtTtlSeconds) {
  const encode = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const body = `${encode({ alg: 'HS256', typ: 'JWT' })}.${encode({ sub, iat: now, exp: now + ttlSeconds })}`;
  return `${body}.${createHmac('sha256', secret).update(body).digest('base64url')}`;
}

/** The secret `npm run dev` gives the gateway: AUTH_JWT_SECRET, else a fixed dev-only value. */
function devJwtSecret() {
  return process.env.AUTH_JWT_SECRET || 'calsync-dev-jwt-secret-change-me';
}

module.exports = { devJwtSecret, devJwtTtlSeconds, signDevJwt };
