import { CalendlyError, type CalendlyClient } from '@calsync/calendly-client';
import { inTransaction, type Logger, type Pool, type Sealer } from '@calsync/service-kit';
import type { IdentityMetrics } from '../metrics';
import {
  findConnection,
  findConnections,
  isLockTimeout,
  lockConnection,
  markReauthRequired,
  recordRefreshFailure,
  updateRefreshedTokens,
  type ConnectionKind,
  type ConnectionRow,
} from './connection-repository';
import { describeFailure, refreshFailureReason } from './calendly-failures';
import { IdentityError, invalidInput, notConnected, reauthRequired, tokenRateLimited } from '../errors';
import { requireMinValidity, requireUserId } from './input';
import { secretContext } from './secret-context';
import { reserveTokenRequest, type TokenBudget } from './token-budget';
import { tokenLifetime } from './token-lifetime';

export interface AccessTokenSettings {
  defaultMinValiditySeconds: number;
  tokenRequestsPerMinute: number;
  /** How long to wait for another replica's refresh of the same user before giving up. */
  refreshLockTimeoutMs: number;
}

export interface AccessToken {
  accessToken: string;
  /** Unset for personal access tokens, which do not expire. */
  expiresAt?: Date;
  kind: ConnectionKind;
  calendlyUserUri: string;
  calendlyOrganizationUri: string;
}

export interface AccessTokens {
  /** A token valid for at least `minValiditySeconds` more (0: the configured default), refreshing when needed. */
  getAccessToken(userId: string, minValiditySeconds?: number): Promise<AccessToken>;
  /**
   * getAccessToken for many users (at most maxUsersPerBatch) with one read of their rows: by
   * user, their token or what getAccessToken would have thrown. Throws only for the request itself.
   */
  getAccessTokens(userIds: string[], minValiditySeconds?: number): Promise<Map<string, AccessToken | Error>>;
}

/** The most users one getAccessTokens call takes. */
export const maxUsersPerBatch = 1_000;
/** How many of one batch's users are refreshed at a time, so a page of expired tokens does not burst at Calendly. */
const batchRefreshConcurrency = 8;

type RefreshOutcome =
  | { row?: ConnectionRow }
  | { row: ConnectionRow; refreshed: true }
  | { row: ConnectionRow; refusedGrant: true }
  | { row: ConnectionRow; limited: Extract<TokenBudget, { allowed: false }> }
  | { row: ConnectionRow; failed: CalendlyError };

/**
 * Whether the row's access token is valid long enough. A caller never gets to demand more than
 * half a token's lifetime: a fresh token could not satisfy more, and every call would refresh.
 */
export function isFresh(row: ConnectionRow, minValiditySeconds: number, nowMs: number): boolean {
  if (row.kind !== 'oauth') return true;
  const expiresAt = row.access_token_expires_at!.getTime();
  const lifetime = expiresAt - row.access_token_issued_at!.getTime();
  return expiresAt > nowMs && expiresAt - nowMs >= Math.min(minValiditySeconds * 1000, lifetime / 2);
}

export function createAccessTokens(deps: {
  log: Logger;
  pool: Pool;
  sealer: Sealer;
  calendly: CalendlyClient;
  metrics: IdentityMetrics;
  settings: AccessTokenSettings;
  now?: () => number;
}): AccessTokens {
  const { log, pool, sealer, calendly, metrics, settings } = deps;
  const now = deps.now ?? Date.now;
  // Calls in this process for the same user wait on one refresh instead of queueing for the row lock.
  const inflight = new Map<string, Promise<ConnectionRow>>();

  function usable(row: ConnectionRow | undefined, minValiditySeconds: number): row is ConnectionRow {
    if (!row) throw notConnected();
    if (row.state === 'reauth_required') throw reauthRequired();
    return isFresh(row, minValiditySeconds, now());
  }

  /**
   * The one refresh across every replica: the row lock makes the others wait, and they re-read
   * the row after it, finding the token this refresh stored. The rotated refresh token is
   * committed before anyone gets the new access token.
   */
  async function refreshUnderLock(userId: string, minValiditySeconds: number): Promise<ConnectionRow> {
    let outcome: RefreshOutcome;
    try {
      outcome = await inTransaction(pool, async (client): Promise<RefreshOutcome> => {
        await client.query("SELECT set_config('lock_timeout', $1, true)", [`${settings.refreshLockTimeoutMs}ms`]);
        const row = await lockConnection(client, userId);
        if (!row || row.state !== 'active' || isFresh(row, minValiditySeconds, now())) return { row };
        const budget = await reserveTokenRequest(client, userId, settings.tokenRequestsPerMinute);
        if (!budget.allowed) {
          await recordRefreshFailure(client, userId, 'rate_limited');
          return { row, limited: budget };
        }
        const refreshToken = sealer.open(row.refresh_token_sealed!, secretContext('refresh_token', userId));
        try {
          const tokens = await calendly.refreshToken(refreshToken);
          const { issuedAt, expiresAt } = tokenLifetime(tokens, now());
          const updated = await updateRefreshedTokens(client, {
            userId,
            accessTokenSealed: sealer.seal(tokens.access_token, secretContext('access_token', userId)),
            refreshTokenSealed: sealer.seal(tokens.refresh_token, secretContext('refresh_token', userId)),
            scope: tokens.scope || row.scope,
            issuedAt,
            expiresAt,
          });
          return { row: updated, refreshed: true };
        } catch (error) {
          if (!(error instanceof CalendlyError)) throw error;
          if (error.oauthError === 'invalid_grant') {
            await recordRefreshFailure(client, userId, 'invalid_grant');
            return {
              row: await markReauthRequired(client, userId, 'calendly refused the refresh token'),
              refusedGrant: true,
            };
          }
          // The tokens stay; the transaction commits the token request just made and the failure.
          await recordRefreshFailure(client, userId, refreshFailureReason(error));
          return { row, failed: error };
        }
      });
    } catch (error) {
      if (!isLockTimeout(error)) throw error;
      metrics.refreshFailed('lock_timeout');
      throw new IdentityError(
        'REFRESH_IN_PROGRESS',
        "another replica is still refreshing this user's Calendly token; try again shortly",
      );
    }

    if (!outcome.row) throw notConnected();
    if ('refreshed' in outcome) {
      metrics.refreshed();
      log.info({ userId, expiresAt: outcome.row.access_token_expires_at }, 'access token refreshed');
    } else if ('refusedGrant' in outcome) {
      metrics.refreshFailed('invalid_grant');
      log.warn({ userId }, 'calendly refused the refresh token; connection needs reauthorization');
    } else if ('limited' in outcome) {
      metrics.refreshFailed('rate_limited');
      throw tokenRateLimited(outcome.limited.retryAfterSeconds);
    } else if ('failed' in outcome) {
      const failure = outcome.failed;
      metrics.refreshFailed(refreshFailureReason(failure));
      log.warn({ userId, failure: describeFailure(failure) }, 'access token refresh failed');
      if (failure.transient) throw failure;
      // Calendly refused calsync itself (e.g. invalid_client): no caller can fix that by retrying.
      throw new IdentityError(
        'REFRESH_REFUSED',
        `Calendly refused calsync's token refresh (HTTP ${failure.status}${failure.oauthError ? ` ${failure.oauthError}` : ''})`,
      );
    }
    if (outcome.row.state === 'reauth_required') throw reauthRequired();
    return outcome.row;
  }

  /** The row as read, or after the one refresh in flight for the user when its token is not valid long enough. */
  async function freshRow(userId: string, row: ConnectionRow | undefined, minValiditySeconds: number) {
    if (usable(row, minValiditySeconds)) return row;
    const key = `${userId}\u0000${minValiditySeconds}`;
    let refresh = inflight.get(key);
    if (!refresh) {
      refresh = refreshUnderLock(userId, minValiditySeconds).finally(() => inflight.delete(key));
      inflight.set(key, refresh);
    }
    return refresh;
  }

  const tokenOf = (userId: string, row: ConnectionRow): AccessToken => ({
    accessToken: sealer.open(row.access_token_sealed, secretContext('access_token', userId)),
    expiresAt: row.access_token_expires_at ?? undefined,
    kind: row.kind,
    calendlyUserUri: row.calendly_user_uri,
    calendlyOrganizationUri: row.calendly_organization_uri,
  });

  return {
    async getAccessToken(userIdInput, minValidityInput = 0) {
      const userId = requireUserId(userIdInput);
      const minValiditySeconds = requireMinValidity(minValidityInput, settings.defaultMinValiditySeconds);
      return tokenOf(userId, await freshRow(userId, await findConnection(pool, userId), minValiditySeconds));
    },

    async getAccessTokens(userIdsInput, minValidityInput = 0) {
      if (userIdsInput.length === 0) throw invalidInput('user_ids is required');
      if (userIdsInput.length > maxUsersPerBatch)
        throw invalidInput(`user_ids must hold at most ${maxUsersPerBatch} user ids`);
      const minValiditySeconds = requireMinValidity(minValidityInput, settings.defaultMinValiditySeconds);
      const results = new Map<string, AccessToken | Error>();
      const userIds: string[] = [];
      for (const userId of new Set(userIdsInput)) {
        try {
          userIds.push(requireUserId(userId));
        } catch (error) {
          results.set(userId, error as Error);
        }
      }
      const rows = userIds.length > 0 ? await findConnections(pool, userIds) : new Map<string, ConnectionRow>();
      const stale: string[] = [];
      for (const userId of userIds) {
        try {
          const row = rows.get(userId);
          if (usable(row, minValiditySeconds)) results.set(userId, tokenOf(userId, row));
          else stale.push(userId);
        } catch (error) {
          results.set(userId, error as Error);
        }
      }
      let next = 0;
      const refresher = async () => {
        while (next < stale.length) {
          const userId = stale[next++]!;
          try {
            results.set(userId, tokenOf(userId, await freshRow(userId, rows.get(userId), minValiditySeconds)));
          } catch (error) {
            results.set(userId, error instanceof Error ? error : new Error(String(error)));
          }
        }
      };
      await Promise.all(Array.from({ length: Math.min(batchRefreshConcurrency, stale.length) }, refresher));
      return results;
    },
  };
}
