import { CalendlyError, type CalendlyClient } from '@calsync/calendly-client';
import { inTransaction, type Logger, type Pool, type Sealer } from '@calsync/service-kit';
import {
  consumeOAuthState,
  hashState,
  insertOAuthState,
  pkceChallenge,
  randomSecret,
} from '../oauth/oauth-state-repository';
import {
  deleteConnection,
  findConnection,
  findUserIdByCalendlyUser,
  isCalendlyAccountTaken,
  lockConnection,
  upsertConnection,
  type ConnectionKind,
  type ConnectionRow,
} from './connection-repository';
import { describeFailure } from './calendly-failures';
import { toConnection, type Connection } from './connection-view';
import { IdentityError, notConnected, tokenRateLimited } from '../errors';
import { requirePersonalToken, requireRedirectUri, requireText, requireUserId } from './input';
import { secretContext } from './secret-context';
import { reserveTokenRequest } from './token-budget';
import { tokenLifetime } from './token-lifetime';

export interface ConnectSettings {
  /** Calendly's OAuth base; the authorize URL is built on it. */
  authUrl: string;
  /** Unset when only personal access tokens may connect. */
  clientId?: string;
  /** Space-separated scopes for authorize; empty asks for none. */
  scopes: string;
  stateTtlSeconds: number;
  tokenRequestsPerMinute: number;
}

export interface ConnectResult {
  connection: Connection;
  replacedPrevious: boolean;
}

/** Connecting, reading and disconnecting a platform user's Calendly account. */
export interface Connections {
  beginConnect(userId: string, redirectUri: string): Promise<{ authorizeUrl: string; state: string; expiresAt: Date }>;
  completeConnect(state: string, code: string): Promise<ConnectResult>;
  connectWithPersonalToken(userId: string, token: string): Promise<ConnectResult>;
  getConnection(userId: string): Promise<Connection>;
  disconnect(userId: string): Promise<{ wasConnected: boolean; revoked: boolean }>;
  /** Disconnects (revoking what Calendly still accepts), then deletes every other row of the user. Idempotent. */
  purge(userId: string): Promise<{ rowsDeleted: number }>;
}

/**
 * The tables besides `connections` that hold a user's rows. The purge test checks every table
 * of the schema afterwards, so a new table with user data that is missing here fails it.
 */
export const userTables = ['oauth_states', 'token_requests'] as const;

interface TokensToStore {
  userId: string;
  kind: ConnectionKind;
  calendlyUserUri: string;
  calendlyOrganizationUri: string;
  scope: string;
  accessToken: string;
  refreshToken: string | null;
  issuedAt: Date | null;
  expiresAt: Date | null;
}

export function createConnections(deps: {
  log: Logger;
  pool: Pool;
  sealer: Sealer;
  calendly: CalendlyClient;
  settings: ConnectSettings;
  now?: () => number;
}): Connections {
  const { log, pool, sealer, calendly, settings } = deps;
  const now = deps.now ?? Date.now;

  /** Revokes an OAuth row's tokens at Calendly; true only when Calendly confirmed every one. */
  async function revokeTokens(row: ConnectionRow): Promise<boolean> {
    if (row.kind !== 'oauth' || !settings.clientId) return false;
    const tokens = [
      sealer.open(row.refresh_token_sealed!, secretContext('refresh_token', row.user_id)),
      sealer.open(row.access_token_sealed, secretContext('access_token', row.user_id)),
    ];
    return revokeQuietly(row.user_id, tokens);
  }

  async function revokeQuietly(userId: string, tokens: string[]): Promise<boolean> {
    let allRevoked = true;
    for (const token of tokens) {
      try {
        await calendly.revokeToken(token);
      } catch (error) {
        allRevoked = false;
        log.warn({ userId, failure: describeFailure(error) }, 'token revocation at calendly failed');
      }
    }
    return allRevoked;
  }

  async function reserveTokenRequestOrRefuse(userId: string): Promise<void> {
    const budget = await inTransaction(pool, (client) =>
      reserveTokenRequest(client, userId, settings.tokenRequestsPerMinute),
    );
    if (!budget.allowed) throw tokenRateLimited(budget.retryAfterSeconds);
  }

  /** Makes these tokens the user's one connection, replacing (and revoking) any earlier one. */
  async function store(tokens: TokensToStore): Promise<ConnectResult> {
    const { userId } = tokens;
    const accessTokenSealed = sealer.seal(tokens.accessToken, secretContext('access_token', userId));
    const refreshTokenSealed =
      tokens.refreshToken === null ? null : sealer.seal(tokens.refreshToken, secretContext('refresh_token', userId));
    let outcome: { row: ConnectionRow; previous?: ConnectionRow } | 'taken';
    try {
      outcome = await inTransaction(pool, async (client) => {
        const previous = await lockConnection(client, userId);
        const holder = await findUserIdByCalendlyUser(client, tokens.calendlyUserUri);
        if (holder !== undefined && holder !== userId) return 'taken' as const;
        const row = await upsertConnection(client, {
          userId,
          kind: tokens.kind,
          calendlyUserUri: tokens.calendlyUserUri,
          calendlyOrganizationUri: tokens.calendlyOrganizationUri,
          scope: tokens.scope,
          accessTokenSealed,
          refreshTokenSealed,
          accessTokenIssuedAt: tokens.issuedAt,
          accessTokenExpiresAt: tokens.expiresAt,
        });
        return { row, previous };
      });
    } catch (error) {
      // Two users finishing a connect to the same account at once: the unique index decides.
      if (!isCalendlyAccountTaken(error)) throw error;
      outcome = 'taken';
    }
    if (outcome === 'taken') {
      // The refused grant would otherwise stay valid at Calendly with nobody holding it.
      if (tokens.kind === 'oauth') await revokeQuietly(userId, [tokens.refreshToken!, tokens.accessToken]);
      log.info(
        { userId, calendlyUserUri: tokens.calendlyUserUri },
        'calendly account already connected to another user',
      );
      throw new IdentityError(
        'CALENDLY_ACCOUNT_TAKEN',
        'this Calendly account is already connected to another user; it must be disconnected there before it can be connected here',
      );
    }
    const { row, previous } = outcome;
    if (previous) await revokeTokens(previous);
    log.info(
      { userId, kind: row.kind, calendlyUserUri: row.calendly_user_uri, replaced: Boolean(previous) },
      'calendly connected',
    );
    return { connection: toConnection(row), replacedPrevious: previous !== undefined };
  }

  const connections: Connections = {
    async beginConnect(userIdInput, redirectUriInput) {
      const userId = requireUserId(userIdInput);
      const redirectUri = requireRedirectUri(redirectUriInput);
      if (!settings.clientId)
        throw new IdentityError(
          'OAUTH_NOT_CONFIGURED',
          'OAuth connect is not configured here (no Calendly client id); connect with a personal access token instead',
        );
      const state = randomSecret();
      const verifier = randomSecret();
      const expiresAt = new Date(now() + settings.stateTtlSeconds * 1000);
      await insertOAuthState(pool, {
        stateHash: hashState(state),
        userId,
        redirectUri,
        codeVerifierSealed: sealer.seal(verifier, secretContext('code_verifier', userId)),
        expiresAt,
      });
      const authorizeUrl = new URL(`${settings.authUrl.replace(/\/+$/, '')}/oauth/authorize`);
      authorizeUrl.searchParams.set('client_id', settings.clientId);
      authorizeUrl.searchParams.set('response_type', 'code');
      authorizeUrl.searchParams.set('redirect_uri', redirectUri);
      authorizeUrl.searchParams.set('state', state);
      authorizeUrl.searchParams.set('code_challenge', pkceChallenge(verifier));
      authorizeUrl.searchParams.set('code_challenge_method', 'S256');
      if (settings.scopes) authorizeUrl.searchParams.set('scope', settings.scopes);
      return { authorizeUrl: authorizeUrl.toString(), state, expiresAt };
    },

    async completeConnect(stateInput, codeInput) {
      const state = requireText('state', stateInput, 512);
      const code = requireText('code', codeInput, 2048);
      // Consumed before anything else: a state works once, whatever happens next.
      const pending = await consumeOAuthState(pool, hashState(state));
      if (!pending)
        throw new IdentityError(
          'OAUTH_STATE_INVALID',
          'this connect link is unknown or was already used; start connecting Calendly again',
        );
      if (pending.expires_at.getTime() <= now())
        throw new IdentityError('OAUTH_STATE_EXPIRED', 'this connect link expired; start connecting Calendly again');
      const userId = pending.user_id;
      const codeVerifier = sealer.open(pending.code_verifier_sealed, secretContext('code_verifier', userId));
      await reserveTokenRequestOrRefuse(userId);
      let tokens;
      try {
        tokens = await calendly.exchangeCode({ code, redirectUri: pending.redirect_uri, codeVerifier });
      } catch (error) {
        if (error instanceof CalendlyError && error.oauthError === 'invalid_grant')
          throw new IdentityError(
            'OAUTH_CODE_REFUSED',
            'Calendly refused the authorization code (expired, already used, or issued for another connect); start connecting Calendly again',
          );
        throw error;
      }
      const { issuedAt, expiresAt } = tokenLifetime(tokens, now());
      return store({
        userId,
        kind: 'oauth',
        calendlyUserUri: tokens.owner,
        calendlyOrganizationUri: tokens.organization,
        scope: tokens.scope,
        accessToken: tokens.access_token,
        refreshToken: tokens.refresh_token,
        issuedAt,
        expiresAt,
      });
    },

    async connectWithPersonalToken(userIdInput, tokenInput) {
      const userId = requireUserId(userIdInput);
      const token = requirePersonalToken(tokenInput);
      let user;
      try {
        user = await calendly.getCurrentUser(token);
      } catch (error) {
        if (error instanceof CalendlyError && error.status === 401)
          throw new IdentityError(
            'PERSONAL_TOKEN_REFUSED',
            'Calendly refused this personal access token (invalid, expired or revoked)',
          );
        throw error;
      }
      return store({
        userId,
        kind: 'personal_token',
        calendlyUserUri: user.uri,
        calendlyOrganizationUri: user.current_organization,
        scope: '',
        accessToken: token,
        refreshToken: null,
        issuedAt: null,
        expiresAt: null,
      });
    },

    async getConnection(userIdInput) {
      const row = await findConnection(pool, requireUserId(userIdInput));
      if (!row) throw notConnected();
      return toConnection(row);
    },

    async disconnect(userIdInput) {
      const userId = requireUserId(userIdInput);
      // The delete waits for a refresh in progress on this row, so it removes the newest tokens.
      const row = await deleteConnection(pool, userId);
      if (!row) return { wasConnected: false, revoked: false };
      const revoked = await revokeTokens(row);
      log.info({ userId, kind: row.kind, revoked }, 'calendly disconnected');
      return { wasConnected: true, revoked };
    },

    async purge(userIdInput) {
      const userId = requireUserId(userIdInput);
      const { wasConnected } = await connections.disconnect(userId);
      let rowsDeleted = wasConnected ? 1 : 0;
      for (const table of userTables) {
        const result = await pool.query(`DELETE FROM ${table} WHERE user_id = $1`, [userId]);
        rowsDeleted += result.rowCount ?? 0;
      }
      log.info({ userId, rowsDeleted }, 'user purged');
      return { rowsDeleted };
    },
  };
  return connections;
}
