import { CalendlyError } from '@calsync/calendly-client';
import { identityV1 } from '@calsync/proto';
import {
  bindService,
  grpcIdentities,
  GrpcError,
  GrpcStatus,
  grpcStatusOf,
  grpcStatusOfHttpFailure,
  reasonOf,
  type Callers,
  type Logger,
  type ServiceBinding,
} from '@calsync/service-kit';
import type { AccessTokens } from '../connections/access-tokens';
import type { ConnectionKind } from '../connections/connection-repository';
import type { Connection } from '../connections/connection-view';
import type { Connections } from '../connections/connections';
import { IdentityError, type IdentityFailure } from '../errors';

const kinds: Record<ConnectionKind, identityV1.ConnectionKind> = {
  oauth: identityV1.ConnectionKind.CONNECTION_KIND_OAUTH,
  personal_token: identityV1.ConnectionKind.CONNECTION_KIND_PERSONAL_TOKEN,
};

export const states: Record<Connection['state'], identityV1.ConnectionState> = {
  active: identityV1.ConnectionState.CONNECTION_STATE_ACTIVE,
  reauth_required: identityV1.ConnectionState.CONNECTION_STATE_REAUTH_REQUIRED,
};

/** A connection as the contract shows it: never a secret. */
export function toProto(connection: Connection): identityV1.Connection {
  return { ...connection, kind: kinds[connection.kind], state: states[connection.state] };
}

/** Each domain failure's status; `reason`: the failure's name travels as the calsync-reason trailer. */
const failures: Record<IdentityFailure, { code: GrpcStatus; reason?: true }> = {
  INVALID_INPUT: { code: GrpcStatus.INVALID_ARGUMENT },
  NOT_CONNECTED: { code: GrpcStatus.NOT_FOUND, reason: true },
  REAUTH_REQUIRED: { code: GrpcStatus.FAILED_PRECONDITION, reason: true },
  TOKEN_RATE_LIMITED: { code: GrpcStatus.RESOURCE_EXHAUSTED, reason: true },
  CALENDLY_ACCOUNT_TAKEN: { code: GrpcStatus.ALREADY_EXISTS, reason: true },
  OAUTH_NOT_CONFIGURED: { code: GrpcStatus.FAILED_PRECONDITION, reason: true },
  OAUTH_STATE_INVALID: { code: GrpcStatus.FAILED_PRECONDITION, reason: true },
  OAUTH_STATE_EXPIRED: { code: GrpcStatus.FAILED_PRECONDITION, reason: true },
  OAUTH_CODE_REFUSED: { code: GrpcStatus.FAILED_PRECONDITION, reason: true },
  PERSONAL_TOKEN_REFUSED: { code: GrpcStatus.UNAUTHENTICATED, reason: true },
  REFRESH_IN_PROGRESS: { code: GrpcStatus.UNAVAILABLE },
  REFRESH_REFUSED: { code: GrpcStatus.INTERNAL },
};

/** identity's one table of errors as gRPC statuses (docs/errors.md); the admin service shares it. */
export function toGrpcError(error: unknown): GrpcError | undefined {
  if (error instanceof IdentityError) {
    const { code, reason } = failures[error.failure];
    return new GrpcError(code, error.message, reason && error.failure);
  }
  if (error instanceof CalendlyError) {
    // By the HTTP status Calendly answered (the kit's one rule for an outside API).
    return new GrpcError(grpcStatusOfHttpFailure(error.answeredStatus), error.safeMessage);
  }
  return undefined;
}

const { gateway, subscription, meetings, operator } = grpcIdentities;

/**
 * Who may call each method, by certificate name. GetAccessToken hands out a live Calendly token:
 * only the services that call Calendly for a user get it, never the public edge. GetConnection
 * shows no secret: operators read it too (`calsync status`), and subscription for a user's sync state.
 */
export const identityCallers: Callers<typeof identityV1.IdentityServiceService> = {
  beginConnect: [gateway],
  completeConnect: [gateway],
  connectWithPersonalToken: [gateway],
  getConnection: [gateway, subscription, operator],
  getAccessToken: [subscription, meetings],
  getAccessTokens: [subscription],
  disconnect: [gateway],
  // The gateway for the signed-in user who asked to be forgotten; an operator for any user.
  purgeUser: [gateway, operator],
};

/** calsync.identity.v1.IdentityService over the domain: decoding and encoding only. */
export function identityService(deps: {
  connections: Connections;
  accessTokens: AccessTokens;
  log: Logger;
}): ServiceBinding {
  const { connections, accessTokens } = deps;
  return bindService(
    'calsync.identity.v1.IdentityService',
    identityV1.IdentityServiceService,
    {
      beginConnect: (request) => connections.beginConnect(request.userId, request.redirectUri),
      async completeConnect(request) {
        const result = await connections.completeConnect(request.state, request.code);
        return { connection: toProto(result.connection), replacedPrevious: result.replacedPrevious };
      },
      async connectWithPersonalToken(request) {
        const result = await connections.connectWithPersonalToken(request.userId, request.token);
        return { connection: toProto(result.connection), replacedPrevious: result.replacedPrevious };
      },
      async getConnection(request) {
        return { connection: toProto(await connections.getConnection(request.userId)) };
      },
      async getAccessToken(request) {
        const token = await accessTokens.getAccessToken(request.userId, request.minValiditySeconds);
        return { ...token, kind: kinds[token.kind] };
      },
      async getAccessTokens(request) {
        const results = await accessTokens.getAccessTokens(request.userIds, request.minValiditySeconds);
        return {
          tokens: [...results].map(([userId, result]): identityV1.UserAccessToken => {
            if (!(result instanceof Error))
              return {
                userId,
                token: { ...result, kind: kinds[result.kind] },
                errorCode: 0,
                errorMessage: '',
                errorReason: '',
              };
            // The status GetAccessToken would have ended with for this user, by the kit's same rule.
            const status = grpcStatusOf(result, {
              method: identityV1.IdentityServiceService.getAccessTokens.path,
              log: deps.log,
              toGrpcError,
            });
            return {
              userId,
              token: undefined,
              errorCode: status.code,
              errorMessage: status.details,
              errorReason: reasonOf(status) ?? '',
            };
          }),
        };
      },
      disconnect: (request) => connections.disconnect(request.userId),
      async purgeUser(request) {
        const { rowsDeleted } = await connections.purge(request.userId);
        return { rowsDeleted };
      },
    },
    identityCallers,
    deps.log,
    { toGrpcError },
  );
}
