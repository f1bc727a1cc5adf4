import { identityV1 } from '@calsync/proto';
import { createGrpcClient, GrpcStatus, hasCode, type GrpcSecurity, type PromiseClient } from '@calsync/service-kit';
import { notConnected, SubscriptionError } from '../errors';

/** What subscription needs of a user's Calendly connection to act for them. */
export interface CalendlyGrant {
  accessToken: string;
  kind: 'oauth' | 'personal_token';
  calendlyUserUri: string;
  calendlyOrganizationUri: string;
}

/**
 * The user's Calendly connection, from identity. Throws SubscriptionError NOT_CONNECTED when the
 * user has none, REAUTH_REQUIRED when they must connect again, IDENTITY_UNAVAILABLE otherwise.
 */
export interface Connections {
  grantFor(userId: string): Promise<CalendlyGrant>;
  /**
   * grantFor for many users in one call to identity (at most grantsPerCall): by user, their
   * grant or the SubscriptionError grantFor would have thrown. Never throws: when identity
   * cannot be asked at all, every user gets IDENTITY_UNAVAILABLE.
   */
  grantsFor(userIds: string[]): Promise<Map<string, CalendlyGrant | SubscriptionError>>;
  /**
   * The connection's health as identity records it, without touching the token: `active`,
   * `reauth_required` (Calendly refused the refresh token), or undefined when the user has none.
   */
  stateOf(userId: string): Promise<'active' | 'reauth_required' | undefined>;
  close(): void;
}

/** The most users identity's GetAccessTokens takes in one call. */
export const grantsPerCall = 1_000;

const grantOf = (answer: identityV1.GetAccessTokenResponse): CalendlyGrant => ({
  accessToken: answer.accessToken,
  kind: answer.kind === identityV1.ConnectionKind.CONNECTION_KIND_PERSONAL_TOKEN ? 'personal_token' : 'oauth',
  calendlyUserUri: answer.calendlyUserUri,
  calendlyOrganizationUri: answer.calendlyOrganizationUri,
});

/** Connections backed by identity's GetAccessToken(s) over gRPC. */
export function createIdentityConnections(options: {
  address: string;
  security: GrpcSecurity;
  timeoutMs?: number;
}): Connections {
  const client: PromiseClient<typeof identityV1.IdentityServiceService> = createGrpcClient(
    identityV1.IdentityServiceService,
    options.address,
    { security: options.security, defaultTimeoutMs: options.timeoutMs ?? 10_000 },
  );
  return {
    async grantFor(userId) {
      let answer: identityV1.GetAccessTokenResponse;
      try {
        answer = await client.getAccessToken({ userId, minValiditySeconds: 0 });
      } catch (error) {
        throw translate(error);
      }
      return grantOf(answer);
    },
    async grantsFor(userIds) {
      const grants = new Map<string, CalendlyGrant | SubscriptionError>();
      for (let start = 0; start < userIds.length; start += grantsPerCall) {
        const chunk = userIds.slice(start, start + grantsPerCall);
        try {
          const answer = await client.getAccessTokens({ userIds: chunk, minValiditySeconds: 0 });
          for (const entry of answer.tokens)
            grants.set(
              entry.userId,
              entry.token
                ? grantOf(entry.token)
                : translate(Object.assign(new Error(entry.errorMessage), { code: entry.errorCode })),
            );
        } catch (error) {
          const failure = translate(error);
          for (const userId of chunk) grants.set(userId, failure);
        }
      }
      return grants;
    },
    async stateOf(userId) {
      let answer: identityV1.GetConnectionResponse;
      try {
        answer = await client.getConnection({ userId });
      } catch (error) {
        if (hasCode(error, GrpcStatus.NOT_FOUND)) return undefined;
        throw translate(error);
      }
      if (!answer.connection) return undefined;
      return answer.connection.state === identityV1.ConnectionState.CONNECTION_STATE_REAUTH_REQUIRED
        ? 'reauth_required'
        : 'active';
    },
    close: () => client.close(),
  };
}

/** identity's answer as subscription's domain error: the one place that reads identity's statuses. */
function translate(error: unknown): SubscriptionError {
  if (hasCode(error, GrpcStatus.NOT_FOUND)) return notConnected();
  // GetAccessToken's only FAILED_PRECONDITION is REAUTH_REQUIRED (identity.proto).
  if (hasCode(error, GrpcStatus.FAILED_PRECONDITION))
    return new SubscriptionError('REAUTH_REQUIRED', 'the user must connect Calendly again');
  if (hasCode(error, GrpcStatus.INVALID_ARGUMENT))
    return new SubscriptionError('IDENTITY_REFUSED_USER_ID', 'identity refused the user id');
  return new SubscriptionError('IDENTITY_UNAVAILABLE', 'identity could not be reached for the Calendly connection', {
    cause: error,
  });
}
