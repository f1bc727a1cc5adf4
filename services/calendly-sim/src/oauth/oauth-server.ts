import { createHash, timingSafeEqual } from 'node:crypto';
import type { Clock } from '../http/clock';
import { ApiError, OAuthError, unauthenticated } from '../http/errors';
import { jwtShapedToken, newUuid, opaqueToken } from '../http/ids';
import type { RateLimiter } from '../limits/rate-limiter';
import { rateLimitHeaders } from '../limits/rate-limiter';
import type { SimulatorSettings } from '../settings/settings';
import { refill, type Durable } from '../state/state-file';
import type { SimUser, UserDirectory } from '../users/user-directory';

export const allScopes = ['users:read', 'webhooks:read', 'webhooks:write', 'scheduled_events:read'] as const;
export type Scope = (typeof allScopes)[number];

/** Who an API call acts as. Personal access tokens carry every scope. */
export interface Principal {
  user: SimUser;
  scopes: ReadonlySet<Scope>;
  via: 'personal_access_token' | 'oauth';
}

export interface AuthorizeRequest {
  client_id?: string;
  response_type?: string;
  redirect_uri?: string;
  state?: string;
  scope?: string;
  code_challenge?: string;
  code_challenge_method?: string;
  /** Simulator only: approve as this user (uuid or URI) without a consent page. */
  sim_user?: string;
  /** Simulator only: `deny` answers access_denied, as a person refusing consent. */
  sim_decision?: string;
}

export type AuthorizeOutcome = { kind: 'redirect'; location: string } | { kind: 'consent' };

/** Client credentials as sent: HTTP Basic, or `client_id`/`client_secret` form fields. */
export interface ClientCredentials {
  basic?: { id: string; secret: string };
  form: Record<string, string | undefined>;
}

export interface TokenResponse {
  token_type: 'Bearer';
  access_token: string;
  refresh_token: string;
  scope: string;
  created_at: number;
  expires_in: number;
  owner: string;
  organization: string;
}

export interface OAuthServer extends Durable {
  authorize(request: AuthorizeRequest): AuthorizeOutcome;
  token(credentials: ClientCredentials): TokenResponse;
  revoke(credentials: ClientCredentials): void;
  /**
   * The user removes the application from their Calendly account: every grant of theirs is
   * revoked, refresh and access tokens alike. Returns how many grants were live.
   */
  revokeUserGrants(userUuid: string): number;
  introspect(credentials: ClientCredentials): Record<string, unknown>;
  /** The principal behind a bearer token, or 401 in Calendly's words. */
  authenticate(bearer: string | undefined): Principal;
  /** Token requests (code exchanges and refreshes) made for a user, allowed or refused: tests count refreshes with it. */
  tokenRequestsOf(userUuid: string): { authorization_code: number; refresh_token: number };
  clear(): void;
}

interface AuthorizationCode {
  userUuid: string;
  clientId: string;
  redirectUri: string;
  challenge?: string;
  scopes: Scope[];
  expiresAt: number;
  used: boolean;
}

interface Grant {
  id: string;
  userUuid: string;
  clientId: string;
  scopes: Scope[];
  accessTokens: Set<string>;
  refreshToken: string;
  revoked: boolean;
}

interface AccessToken {
  grant: Grant;
  issuedAt: number;
  expiresAt: number;
  revoked: boolean;
}

interface RefreshToken {
  grant: Grant;
  issuedAt: number;
  state: 'active' | 'used' | 'revoked';
}

const codeTtlMs = 10 * 60 * 1000;
const base64url43to128 = /^[A-Za-z0-9_-]{43,128}$/;
const verifierPattern = /^[A-Za-z0-9._~-]{43,128}$/;
const invalidGrantText =
  'The provided authorization grant is invalid, expired, revoked, does not match the redirection URI used in the authorization request, or was issued to another client.';

const sameSecret = (a: string, b: string) =>
  timingSafeEqual(createHash('sha256').update(a).digest(), createHash('sha256').update(b).digest());

function withQuery(uri: string, params: Record<string, string | undefined>): string {
  const url = new URL(uri);
  for (const [key, value] of Object.entries(params)) if (value !== undefined) url.searchParams.set(key, value);
  return url.toString();
}

export function createOAuthServer(deps: {
  users: UserDirectory;
  clock: Clock;
  settings: SimulatorSettings;
  tokenLimiter: RateLimiter;
}): OAuthServer {
  const { users, clock, settings } = deps;
  const codes = new Map<string, AuthorizationCode>();
  const accessTokens = new Map<string, AccessToken>();
  const refreshTokens = new Map<string, RefreshToken>();
  // Grants are reached through their tokens, so these three hold every grant too.
  const collections = { codes, accessTokens, refreshTokens };

  const authenticateClient = (credentials: ClientCredentials): void => {
    const id = credentials.basic?.id ?? credentials.form.client_id;
    const secret = credentials.basic?.secret ?? credentials.form.client_secret;
    if (!id || secret === undefined || id !== settings.clientId || !sameSecret(secret, settings.clientSecret)) {
      throw new OAuthError(401, 'invalid_client', 'Client authentication failed.');
    }
  };

  const tokenRequestCounts = new Map<string, { authorization_code: number; refresh_token: number }>();
  const countTokenRequest = (userUuid: string, grant: 'authorization_code' | 'refresh_token'): void => {
    const counts = tokenRequestCounts.get(userUuid) ?? { authorization_code: 0, refresh_token: 0 };
    counts[grant] += 1;
    tokenRequestCounts.set(userUuid, counts);
  };

  const limitTokenRequests = (userUuid: string): void => {
    const decision = deps.tokenLimiter.take(`token:${userUuid}`, settings.tokenRequestsPerUserPerMinute);
    if (!decision.allowed) {
      throw new ApiError(
        429,
        'Too Many Requests',
        `At most ${decision.limit} token requests per user per minute; retry in ${decision.resetSeconds} s.`,
        undefined,
        { ...rateLimitHeaders(decision), 'Retry-After': String(decision.resetSeconds) },
      );
    }
  };

  const issue = (grant: Grant): TokenResponse => {
    const now = clock.now();
    const user = users.get(grant.userUuid);
    if (!user) throw new OAuthError(400, 'invalid_grant', invalidGrantText);
    const accessToken = jwtShapedToken({
      iss: 'calendly-sim',
      user_uuid: user.uuid,
      app_uid: grant.clientId,
      scope: grant.scopes.join(' '),
      iat: Math.floor(now / 1000),
      exp: Math.floor(now / 1000) + settings.accessTokenTtlSeconds,
    });
    accessTokens.set(accessToken, {
      grant,
      issuedAt: now,
      expiresAt: now + settings.accessTokenTtlSeconds * 1000,
      revoked: false,
    });
    grant.accessTokens.add(accessToken);
    const refreshToken = opaqueToken();
    refreshTokens.set(refreshToken, { grant, issuedAt: now, state: 'active' });
    grant.refreshToken = refreshToken;
    return {
      token_type: 'Bearer',
      access_token: accessToken,
      refresh_token: refreshToken,
      scope: grant.scopes.join(' '),
      created_at: Math.floor(now / 1000),
      expires_in: settings.accessTokenTtlSeconds,
      owner: user.uri,
      organization: user.organization.uri,
    };
  };

  const redeemCode = (form: Record<string, string | undefined>, clientId: string): TokenResponse => {
    if (!form.code) throw new OAuthError(400, 'invalid_request', 'code is required.');
    const code = codes.get(form.code);
    if (!code || code.used || code.clientId !== clientId || clock.now() >= code.expiresAt) {
      throw new OAuthError(400, 'invalid_grant', invalidGrantText);
    }
    countTokenRequest(code.userUuid, 'authorization_code');
    limitTokenRequests(code.userUuid);
    if (form.redirect_uri !== code.redirectUri) throw new OAuthError(400, 'invalid_grant', invalidGrantText);
    if (code.challenge !== undefined) {
      const verifier = form.code_verifier;
      if (!verifier || !verifierPattern.test(verifier)) {
        throw new OAuthError(400, 'invalid_grant', 'code_verifier is missing or malformed.');
      }
      const computed = createHash('sha256').update(verifier).digest('base64url');
      if (!sameSecret(computed, code.challenge)) {
        throw new OAuthError(400, 'invalid_grant', 'code_verifier does not match the code_challenge.');
      }
    }
    code.used = true;
    const grant: Grant = {
      id: newUuid(),
      userUuid: code.userUuid,
      clientId,
      scopes: code.scopes,
      accessTokens: new Set(),
      refreshToken: '',
      revoked: false,
    };
    return issue(grant);
  };

  const rotate = (form: Record<string, string | undefined>, clientId: string): TokenResponse => {
    if (!form.refresh_token) throw new OAuthError(400, 'invalid_request', 'refresh_token is required.');
    const record = refreshTokens.get(form.refresh_token);
    if (!record) throw new OAuthError(400, 'invalid_grant', invalidGrantText);
    countTokenRequest(record.grant.userUuid, 'refresh_token');
    limitTokenRequests(record.grant.userUuid);
    if (record.state !== 'active' || record.grant.revoked || record.grant.clientId !== clientId) {
      throw new OAuthError(400, 'invalid_grant', invalidGrantText);
    }
    // Single use: the old refresh token is spent before the new pair exists.
    record.state = 'used';
    return issue(record.grant);
  };

  return {
    authorize(request) {
      if (!request.client_id || request.client_id !== settings.clientId) {
        throw new OAuthError(400, 'invalid_client', 'Unknown client_id.');
      }
      let redirect: URL;
      try {
        redirect = new URL(request.redirect_uri ?? '');
      } catch {
        throw new OAuthError(400, 'invalid_request', 'redirect_uri must be an absolute URL.');
      }
      if (redirect.protocol !== 'http:' && redirect.protocol !== 'https:') {
        throw new OAuthError(400, 'invalid_request', 'redirect_uri must be an http or https URL.');
      }
      const redirectUri = request.redirect_uri!;
      const fail = (error: string, description: string): AuthorizeOutcome => ({
        kind: 'redirect',
        location: withQuery(redirectUri, { error, error_description: description, state: request.state }),
      });
      if (request.response_type !== 'code') return fail('unsupported_response_type', 'response_type must be code.');
      if (request.code_challenge !== undefined || request.code_challenge_method !== undefined) {
        if ((request.code_challenge_method ?? 'plain') !== 'S256') {
          return fail('invalid_request', 'code_challenge_method must be S256.');
        }
        if (!request.code_challenge || !base64url43to128.test(request.code_challenge)) {
          return fail('invalid_request', 'code_challenge must be 43 to 128 base64url characters.');
        }
      }
      const requested = request.scope?.split(/[\s+]+/).filter(Boolean) ?? [...allScopes];
      const unknown = requested.filter((scope) => !(allScopes as readonly string[]).includes(scope));
      if (unknown.length > 0) return fail('invalid_scope', `Unknown scope: ${unknown.join(' ')}.`);
      if (request.sim_decision === 'deny') return fail('access_denied', 'The user denied the request.');
      if (request.sim_user === undefined) return { kind: 'consent' };
      const user = users.find(request.sim_user);
      if (!user) throw new OAuthError(400, 'invalid_request', 'sim_user names no simulated user.');
      const code = opaqueToken();
      codes.set(code, {
        userUuid: user.uuid,
        clientId: request.client_id,
        redirectUri: request.redirect_uri!,
        challenge: request.code_challenge,
        scopes: [...new Set(requested)] as Scope[],
        expiresAt: clock.now() + codeTtlMs,
        used: false,
      });
      return { kind: 'redirect', location: withQuery(redirectUri, { code, state: request.state }) };
    },

    token(credentials) {
      authenticateClient(credentials);
      const clientId = settings.clientId;
      const { form } = credentials;
      switch (form.grant_type) {
        case 'authorization_code':
          return redeemCode(form, clientId);
        case 'refresh_token':
          return rotate(form, clientId);
        case undefined:
        case '':
          throw new OAuthError(400, 'invalid_request', 'grant_type is required.');
        default:
          throw new OAuthError(
            400,
            'unsupported_grant_type',
            'grant_type must be authorization_code or refresh_token.',
          );
      }
    },

    revoke(credentials) {
      authenticateClient(credentials);
      const token = credentials.form.token;
      if (!token) throw new OAuthError(400, 'invalid_request', 'token is required.');
      const access = accessTokens.get(token);
      if (access) access.revoked = true;
      const refresh = refreshTokens.get(token);
      if (refresh) {
        // Revoking a refresh token ends its grant, access tokens included (RFC 7009 section 2.1).
        refresh.state = 'revoked';
        refresh.grant.revoked = true;
        for (const issued of refresh.grant.accessTokens) {
          const record = accessTokens.get(issued);
          if (record) record.revoked = true;
        }
      }
    },

    revokeUserGrants(userUuid) {
      const grants = new Set<Grant>();
      for (const record of refreshTokens.values()) {
        if (record.grant.userUuid === userUuid && !record.grant.revoked) grants.add(record.grant);
      }
      for (const grant of grants) {
        grant.revoked = true;
        for (const issued of grant.accessTokens) {
          const record = accessTokens.get(issued);
          if (record) record.revoked = true;
        }
        const refresh = refreshTokens.get(grant.refreshToken);
        if (refresh) refresh.state = 'revoked';
      }
      return grants.size;
    },

    introspect(credentials) {
      authenticateClient(credentials);
      const token = credentials.form.token;
      if (!token) throw new OAuthError(400, 'invalid_request', 'token is required.');
      const now = clock.now();
      const access = accessTokens.get(token);
      const refresh = refreshTokens.get(token);
      const grant = access?.grant ?? refresh?.grant;
      const user = grant ? users.get(grant.userUuid) : undefined;
      if (!grant || !user || grant.revoked) return { active: false };
      const common = {
        active: true,
        scope: grant.scopes.join(' '),
        client_id: grant.clientId,
        owner: user.uri,
        organization: user.organization.uri,
      };
      if (access && !access.revoked && now < access.expiresAt) {
        const times = { exp: Math.floor(access.expiresAt / 1000), iat: Math.floor(access.issuedAt / 1000) };
        return { ...common, token_type: 'Bearer', ...times };
      }
      if (refresh && refresh.state === 'active') {
        return { ...common, token_type: 'refresh_token', iat: Math.floor(refresh.issuedAt / 1000) };
      }
      return { active: false };
    },

    authenticate(bearer) {
      if (!bearer) throw unauthenticated('The access token is missing.');
      const patUser = users.byPersonalAccessToken(bearer);
      if (patUser) return { user: patUser, scopes: new Set(allScopes), via: 'personal_access_token' };
      const access = accessTokens.get(bearer);
      const user = access ? users.get(access.grant.userUuid) : undefined;
      if (!access || !user) throw unauthenticated('The access token is invalid');
      if (access.revoked || access.grant.revoked) throw unauthenticated('The access token is revoked');
      if (clock.now() >= access.expiresAt) throw unauthenticated('The access token expired');
      return { user, scopes: new Set(access.grant.scopes), via: 'oauth' };
    },

    tokenRequestsOf: (userUuid) => ({ authorization_code: 0, refresh_token: 0, ...tokenRequestCounts.get(userUuid) }),
    durableState: () => ({ collections }),
    restoreState: (saved) => refill(collections, saved.collections),
    clear() {
      tokenRequestCounts.clear();
      codes.clear();
      accessTokens.clear();
      refreshTokens.clear();
    },
  };
}
