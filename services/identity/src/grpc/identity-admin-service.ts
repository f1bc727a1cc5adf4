import { identityAdminV1 } from '@calsync/proto';
import {
  bindService,
  grpcIdentities,
  type Callers,
  type Logger,
  type ResealReport,
  type ServiceBinding,
} from '@calsync/service-kit';
import { toGrpcError } from './identity-service';

/** Who may call each method, by certificate name: operators, through the calsync CLI. */
export const identityAdminCallers: Callers<typeof identityAdminV1.IdentityAdminServiceService> = {
  rotateSealingKeys: [grpcIdentities.operator],
};

/** calsync.identity.v1.IdentityAdminService: operators' commands (the calsync CLI), over the domain the rotate-keys command uses. */
export function identityAdminService(deps: {
  /** Re-seals every stored secret under the active key (rotation/reseal.ts, bound to this replica's pool and sealer). */
  reseal: () => Promise<ResealReport>;
  activeKeyId: string;
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
    },
    identityAdminCallers,
    deps.log,
    { toGrpcError },
  );
}
