import { subscriptionAdminV1, subscriptionV1 } from '@calsync/proto';
import {
  bindService,
  grpcIdentities,
  GrpcError,
  GrpcStatus,
  type Callers,
  type Logger,
  type ResealReport,
  type ServiceBinding,
} from '@calsync/service-kit';
import type { HookFleet } from '../fleet/hook-fleet';
import type { SyncModeName } from '../polling/sync-mode-repository';
import type { WebhookState } from '../webhooks/webhook-repository';
import { toGrpcError, toWebhook, webhookStates } from './subscription-service';

const stateOf = new Map<subscriptionV1.WebhookState, WebhookState>(
  Object.entries(webhookStates).map(([name, value]) => [value, name as WebhookState]),
);

const { SyncMode } = subscriptionV1;
const syncModes: Record<SyncModeName, subscriptionV1.SyncMode> = {
  webhook: SyncMode.SYNC_MODE_WEBHOOK,
  polling: SyncMode.SYNC_MODE_POLLING,
};
const syncModeOf = new Map<subscriptionV1.SyncMode, SyncModeName>(
  Object.entries(syncModes).map(([name, value]) => [value, name as SyncModeName]),
);

/** Who may call each method, by certificate name: operators, through the calsync CLI. */
export const subscriptionAdminCallers: Callers<typeof subscriptionAdminV1.SubscriptionAdminServiceService> = {
  listHooks: [grpcIdentities.operator],
  countHooks: [grpcIdentities.operator],
  rotateSealingKeys: [grpcIdentities.operator],
};

/**
 * The operators' view of every user's hooks. Served beside SubscriptionService but a service of
 * its own, so that per-method authorization can allow it to the operator identity alone.
 */
export function subscriptionAdminService(deps: {
  fleet: HookFleet;
  /** Re-seals every signing key under the active key (webhooks/signing-key-reseal.ts, this replica's pool and sealer). */
  reseal: () => Promise<ResealReport>;
  activeKeyId: string;
  log: Logger;
}): ServiceBinding {
  return bindService(
    'calsync.subscription.v1.SubscriptionAdminService',
    subscriptionAdminV1.SubscriptionAdminServiceService,
    {
      async listHooks(request) {
        const { UNRECOGNIZED, WEBHOOK_STATE_UNSPECIFIED } = subscriptionV1.WebhookState;
        const state = stateOf.get(request.state);
        if (request.state === UNRECOGNIZED || (request.state !== WEBHOOK_STATE_UNSPECIFIED && !state))
          throw new GrpcError(GrpcStatus.INVALID_ARGUMENT, 'state is not a WebhookState');
        const syncMode = syncModeOf.get(request.syncMode);
        if (request.syncMode !== SyncMode.SYNC_MODE_UNSPECIFIED && !syncMode)
          throw new GrpcError(GrpcStatus.INVALID_ARGUMENT, 'sync_mode is not a SyncMode');
        const page = await deps.fleet.list({
          ...(state ? { state } : {}),
          ...(syncMode ? { syncMode } : {}),
          ...(request.userId ? { userId: request.userId } : {}),
          ...(request.pageSize !== 0 ? { pageSize: request.pageSize } : {}),
          ...(request.cursor ? { cursor: request.cursor } : {}),
        });
        return { webhooks: page.hooks.map(toWebhook), nextCursor: page.nextCursor };
      },
      async rotateSealingKeys() {
        const report = await deps.reseal();
        const fields = { ...report, activeKeyId: deps.activeKeyId };
        if (report.settled && report.unreadable === 0)
          deps.log.info(fields, 'every signing key is sealed with the active key');
        else deps.log.error(fields, 'some signing keys are still sealed with another key');
        const resealed = Object.values(report.resealed).reduce((sum, count) => sum + count, 0);
        return { activeKeyId: deps.activeKeyId, resealed, unreadable: report.unreadable, settled: report.settled };
      },
      async countHooks() {
        const [counts, modes] = await Promise.all([deps.fleet.count(), deps.fleet.countSyncModes()]);
        return {
          counts: [...counts].map(([state, count]) => ({ state: webhookStates[state], count })),
          syncModes: [...modes].map(([mode, count]) => ({ syncMode: syncModes[mode], count })),
        };
      },
    },
    subscriptionAdminCallers,
    deps.log,
    { toGrpcError },
  );
}
