import { identityV1 } from '@calsync/proto';
import {
  createGrpcClient,
  GrpcError,
  GrpcStatus,
  reasonOf,
  type GrpcSecurity,
  type PromiseClient,
} from '@calsync/service-kit';

/** What subscription needs of a user's Calendly connection to act for them. */
export interface CalendlyGrant {
  accessToken: string;
  kind: 'oauth' | 'personal_token';
  calendlyUserUri: string;
  calendlyOrganizationUri: string;
}

/**
 * The user's Calendly connection, from identity. Throws GrpcError NOT_FOUND when the user has
 * no connection, FAILED_PRECONDITION when they must connect again, UNAVAILABLE otherwise.
 */
export interface Connections {
  grantFor(userId: string): Promise<CalendlyGrant>;
  /**
   * The connection's health as identity records it, without touching the token: `active`,
   * `reauth_required` (Calendly refused the refresh token), or undefined when the user has none.
   */
  stateOf(userId: string): Promise<'active' | 'reauth_required' | undefined>;
  close(): void;
}

/** Connections backed by identity's GetAccessToken over gRPC. */
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
      return {
        accessToken: answer.accessToken,
        kind: answer.kind === identityV1.ConnectionKind.CONNECTION_KIND_PERSONAL_TOKEN ? 'personal_token' : 'oauth',
        calendlyUserUri: answer.calendlyUserUri,
        calendlyOrganizationUri: answer.calendlyOrganizationUri,
      };
    },
    async stateOf(userId) {
      let answer: identityV1.GetConnectionResponse;
      try {
        answer = await client.getConnection({ userId });
      } catch (error) {
        if ((error as { code?: number }).code === GrpcStatus.NOT_FOUND) return undefined;
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

function translate(error: unknown): GrpcError {
  const code = (error as { code?: number }).code;
  if (code === GrpcStatus.NOT_FOUND)
    return new GrpcError(GrpcStatus.NOT_FOUND, 'the user has no Calendly connection', 'NOT_CONNECTED');
  if (code === GrpcStatus.FAILED_PRECONDITION)
    return new GrpcError(
      GrpcStatus.FAILED_PRECONDITION,
      'the user must connect Calendly again',
      reasonOf(error) ?? 'REAUTH_REQUIRED',
    );
  if (code === GrpcStatus.INVALID_ARGUMENT)
    return new GrpcError(GrpcStatus.INVALID_ARGUMENT, 'identity refused the user id');
  return new GrpcError(GrpcStatus.UNAVAILABLE, 'identity could not be reached for the Calendly connection');
}
