import { identityV1 } from '@calsync/proto';
import { bindService, grpcIdentities, type Callers, type Logger, type ServiceBinding } from '@calsync/service-kit';
import type { AccessTokens } from '../connections/access-tokens';
import type { ConnectionKind } from '../connections/connection-repository';
import type { Connection } from '../connections/connection-view';
import type { Connections } from '../connections/connections';

const kinds: Record<ConnectionKind, identityV1.ConnectionKind> = {
  oauth: identityV1.ConnectionKind.CONNECTION_KIND_OAUTH,
  personal_token: identityV1.ConnectionKind.CONNECTION_KIND_PERSONAL_TOKEN,
};

const states: Record<Connection['state'], identityV1.ConnectionState> = {
  active: identityV1.ConnectionState.CONNECTION_STATE_ACTIVE,
  reauth_required: identityV1.ConnectionState.CONNECTION_STATE_REAUTH_REQUIRED,
};

function toProto(connection: Connection): identityV1.Connection {
  return { ...connection, kind: kinds[connection.kind], state: states[connection.state] };
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
      disconnect: (request) => connections.disconnect(request.userId),
      async purgeUser(request) {
        const { rowsDeleted } = await connections.purge(request.userId);
        return { rowsDeleted };
      },
    },
    identityCallers,
    deps.log,
  );
}
