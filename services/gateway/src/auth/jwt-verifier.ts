import { createRemoteJWKSet, errors, jwtVerify, type JWTVerifyGetKey, type JWTVerifyOptions } from 'jose';

/** Why a bearer token was not accepted. */
export class AuthError extends Error {
  constructor(
    /** missing: no credentials; invalid: credentials refused; unavailable: the key set could not be fetched. */
    readonly kind: 'missing' | 'invalid' | 'unavailable',
    message: string,
  ) {
    super(message);
    this.name = 'AuthError';
  }
}

export interface JwtVerifierOptions {
  /** HS256 shared secret. Exactly one of secret and jwksUrl. */
  secret?: string;
  /** Where the platform publishes its signing keys (asymmetric algorithms only). */
  jwksUrl?: string;
  issuer?: string;
  audience?: string[];
  /** Tokens issued longer ago than this are refused; `iat` and `exp` are therefore required. */
  maxTokenAgeSeconds: number;
  clockToleranceSeconds?: number;
}

/** The signed-in platform user a request acts for. */
export interface Principal {
  userId: string;
}

export type JwtVerifier = (token: string) => Promise<Principal>;

// Asymmetric algorithms only for a JWKS: accepting HS* there would let anyone who knows a
// public key sign with it as an HMAC secret.
const jwksAlgorithms = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'];

/**
 * Verifies platform JWTs with jose: HS256 with a shared secret, or the keys at a JWKS URL
 * (fetched lazily, cached, refetched when an unknown `kid` appears). `exp` and `iat` are
 * required, the token's age is bounded, `nbf` is honoured; issuer and audience are checked when
 * configured; `sub` is the platform user id.
 */
export function createJwtVerifier(options: JwtVerifierOptions): JwtVerifier {
  if (!options.secret === !options.jwksUrl) throw new Error('configure exactly one of secret and jwksUrl');
  const verifyOptions: JWTVerifyOptions = {
    algorithms: options.secret ? ['HS256'] : jwksAlgorithms,
    clockTolerance: options.clockToleranceSeconds ?? 5,
    // A token without exp would be valid for ever; maxTokenAge makes jose require iat too
    // (and refuse one issued in the future). nbf, when present, is always checked.
    requiredClaims: ['exp', 'iat'],
    maxTokenAge: options.maxTokenAgeSeconds,
    ...(options.issuer ? { issuer: options.issuer } : {}),
    ...(options.audience && options.audience.length > 0 ? { audience: options.audience } : {}),
  };
  const secret = options.secret ? new TextEncoder().encode(options.secret) : undefined;
  const keySet: JWTVerifyGetKey | undefined = options.jwksUrl
    ? createRemoteJWKSet(new URL(options.jwksUrl), { timeoutDuration: 5_000, cooldownDuration: 30_000 })
    : undefined;

  return async (token) => {
    let payload: { sub?: unknown };
    try {
      ({ payload } = secret
        ? await jwtVerify(token, secret, verifyOptions)
        : await jwtVerify(token, keySet!, verifyOptions));
    } catch (error) {
      throw toAuthError(error);
    }
    const sub = payload.sub;
    if (typeof sub !== 'string' || sub.length === 0 || sub.length > 256) {
      throw new AuthError('invalid', 'the token has no usable "sub" claim');
    }
    return { userId: sub };
  };
}

function toAuthError(error: unknown): AuthError {
  if (error instanceof errors.JWTExpired) return new AuthError('invalid', 'the token has expired');
  if (error instanceof errors.JWTClaimValidationFailed) {
    if (error.reason === 'missing') return new AuthError('invalid', `the token has no "${error.claim}" claim`);
    if (error.claim === 'nbf') return new AuthError('invalid', 'the token is not valid yet');
    return new AuthError('invalid', `the token's "${error.claim}" claim is not accepted`);
  }
  if (
    error instanceof errors.JWKSTimeout ||
    error instanceof errors.JWKSInvalid ||
    !(error instanceof errors.JOSEError) ||
    error.code === 'ERR_JOSE_GENERIC'
  ) {
    // The key set could not be fetched or read: not the caller's fault.
    return new AuthError('unavailable', 'the signing keys could not be loaded');
  }
  return new AuthError('invalid', 'the token is not valid');
}

/** The token of an `Authorization: Bearer <token>` header; AuthError('missing'|'invalid') otherwise. */
export function bearerToken(header: string | undefined): string {
  if (!header) throw new AuthError('missing', 'an Authorization: Bearer token is required');
  const match = /^Bearer[ ]+([A-Za-z0-9\-._~+/]+=*)\s*$/i.exec(header);
  if (!match) throw new AuthError('invalid', 'the Authorization header must be "Bearer <token>"');
  return match[1]!;
}
