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
import type { WebhookState } from '../webhooks/webhook-repository';
import { toGrpcError, toWebhook, webhookStates } from './subscription-service';

const stateOf = new Map<subscriptionV1.WebhookState, WebhookState>(
  Object.entries(webhookStates).map(([name, value]) => [value, name as WebhookState]),
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
        const page = await deps.fleet.list({
          ...(state ? { state } : {}),
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
        const counts = await deps.fleet.count();
        return {
          counts: [...counts].map(([state, count]) => ({ state: webhookStates[state], count })),
        };
      },
    },
    subscriptionAdminCallers,
    deps.log,
    { toGrpcError },
  );
}
