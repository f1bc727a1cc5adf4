import { identityAdminV1, identityV1 } from '@calsync/proto';
import {
  bindService,
  grpcIdentities,
  type Callers,
  type Logger,
  type ResealReport,
  type ServiceBinding,
} from '@calsync/service-kit';
import type { ConnectionState } from '../connections/connection-repository';
import { invalidInput } from '../errors';
import type { ConnectionFleet } from '../fleet/connection-fleet';
import { states, toGrpcError, toProto } from './identity-service';

const stateOf = new Map<identityV1.ConnectionState, ConnectionState>(
  Object.entries(states).map(([name, value]) => [value, name as ConnectionState]),
);

/** Who may call each method, by certificate name: operators, through the calsync CLI. */
export const identityAdminCallers: Callers<typeof identityAdminV1.IdentityAdminServiceService> = {
  rotateSealingKeys: [grpcIdentities.operator],
  listConnections: [grpcIdentities.operator],
};

/**
 * calsync.identity.v1.IdentityAdminService: operators' commands and fleet view (the calsync CLI).
 * A service of its own, so that per-method authorization can allow it to the operator identity alone.
 */
export function identityAdminService(deps: {
  /** Re-seals every stored secret under the active key (rotation/reseal.ts, bound to this replica's pool and sealer). */
  reseal: () => Promise<ResealReport>;
  activeKeyId: string;
  fleet: ConnectionFleet;
  log: Logger;
}): ServiceBinding {
  return bindService(
    'calsync.identity.v1.IdentityAdminService',
    identityAdminV1.IdentityAdminServiceService,
    {
      async rotateSealingKeys() {
        const report = await deps.reseal();
        const resealed = Object.values(report.resealed).reduce((sum, count) => sum + count, 0);
        const fields = { ...report, activeKeyId: deps.activeKeyId };
        if (report.settled && report.unreadable === 0)
          deps.log.info(fields, 'every secret is sealed with the active key');
        else deps.log.error(fields, 'some secrets are still sealed with another key');
        return { activeKeyId: deps.activeKeyId, resealed, unreadable: report.unreadable, settled: report.settled };
      },
      async listConnections(request) {
        const state = stateOf.get(request.state);
        if (request.state !== identityV1.ConnectionState.CONNECTION_STATE_UNSPECIFIED && !state)
          throw invalidInput('state is not a ConnectionState');
        const page = await deps.fleet.list({
          ...(state ? { state } : {}),
          ...(request.pageSize !== 0 ? { pageSize: request.pageSize } : {}),
          ...(request.cursor ? { cursor: request.cursor } : {}),
        });
        return { connections: page.connections.map(toProto), nextCursor: page.nextCursor };
      },
    },
    identityAdminCallers,
    deps.log,
    { toGrpcError },
  );
}
