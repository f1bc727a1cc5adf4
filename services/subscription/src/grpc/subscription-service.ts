import { CalendlyError } from '@calsync/calendly-client';
import { subscriptionV1, verifyFailureAnswers } from '@calsync/proto';
import {
  bindService,
  grpcIdentities,
  GrpcError,
  GrpcStatus,
  grpcStatusOfHttpFailure,
  type Callers,
  type Logger,
  type ServiceBinding,
} from '@calsync/service-kit';
import { SubscriptionError, type SubscriptionFailure } from '../errors';
import { FleetQueryInvalid } from '../fleet/hook-fleet';
import type { Reconciler } from '../reconcile/reconciler';
import type { Subscriptions } from '../subscriptions/subscriptions';
import { DeliveryRefused, type Verifier } from '../verify/verifier';
import { verifyDeliveries, verifyDelivery } from './verify-deliveries';
import type { SyncModeName, SyncModeRow } from '../polling/sync-mode-repository';
import type { DegradedReason, ImportStatusName, SyncState, SyncStateName } from '../sync-state/sync-state';
import type { SyncStateReader } from '../sync-state/sync-state-reader';
import type { WebhookRow } from '../webhooks/webhook-repository';

const { WebhookState, SigningKeySource, SyncMode } = subscriptionV1;

const syncModes: Record<SyncModeName, subscriptionV1.SyncMode> = {
  webhook: SyncMode.SYNC_MODE_WEBHOOK,
  polling: SyncMode.SYNC_MODE_POLLING,
};

/** A user's sync mode as the contract shows it (no row: no sync). */
export function toSyncMode(row: SyncModeRow | undefined) {
  return {
    syncMode: row ? syncModes[row.mode] : SyncMode.SYNC_MODE_UNSPECIFIED,
    syncModeReason: row?.reason ?? '',
    syncModeSince: row?.since,
  };
}

export const webhookStates: Record<WebhookRow['state'], subscriptionV1.WebhookState> = {
  pending: WebhookState.WEBHOOK_STATE_PENDING,
  active: WebhookState.WEBHOOK_STATE_ACTIVE,
  disabled: WebhookState.WEBHOOK_STATE_DISABLED,
  missing: WebhookState.WEBHOOK_STATE_MISSING,
  removing: WebhookState.WEBHOOK_STATE_REMOVING,
  failed: WebhookState.WEBHOOK_STATE_FAILED,
};

/** A hook as the contract shows it: never its key. */
export function toWebhook(row: WebhookRow): subscriptionV1.Webhook {
  return {
    hookId: row.hookId,
    userId: row.userId,
    calendlyUserUri: row.calendlyUserUri,
    calendlyOrganizationUri: row.calendlyOrganizationUri,
    calendlySubscriptionUri: row.calendlySubscriptionUri ?? '',
    callbackUrl: row.callbackUrl,
    events: row.events,
    state: webhookStates[row.state],
    signingKeySource:
      row.signingKeySource === 'subscription'
        ? SigningKeySource.SIGNING_KEY_SOURCE_SUBSCRIPTION
        : SigningKeySource.SIGNING_KEY_SOURCE_APPLICATION,
    createdAt: row.createdAt,
    lastVerifiedAt: row.lastVerifiedAt ?? undefined,
    lastError: row.lastError ?? '',
    lastDeliveryAt: row.lastDeliveryAt ?? undefined,
    legacy: row.legacy,
    scope: row.scope,
    lastRefusedAt: row.lastRefusedAt ?? undefined,
    lastRefusal: row.lastRefusal ?? '',
  };
}

const syncStateNames: Record<SyncStateName, subscriptionV1.SyncStateName> = {
  importing: subscriptionV1.SyncStateName.SYNC_STATE_NAME_IMPORTING,
  live: subscriptionV1.SyncStateName.SYNC_STATE_NAME_LIVE,
  degraded: subscriptionV1.SyncStateName.SYNC_STATE_NAME_DEGRADED,
  reauth_required: subscriptionV1.SyncStateName.SYNC_STATE_NAME_REAUTH_REQUIRED,
};

const degradedReasons: Record<DegradedReason, subscriptionV1.DegradedReason> = {
  import_failed: subscriptionV1.DegradedReason.DEGRADED_REASON_IMPORT_FAILED,
  webhook_pending: subscriptionV1.DegradedReason.DEGRADED_REASON_WEBHOOK_PENDING,
  webhook_disabled: subscriptionV1.DegradedReason.DEGRADED_REASON_WEBHOOK_DISABLED,
  webhook_missing: subscriptionV1.DegradedReason.DEGRADED_REASON_WEBHOOK_MISSING,
  webhook_removing: subscriptionV1.DegradedReason.DEGRADED_REASON_WEBHOOK_REMOVING,
  webhook_failed: subscriptionV1.DegradedReason.DEGRADED_REASON_WEBHOOK_FAILED,
  webhook_none: subscriptionV1.DegradedReason.DEGRADED_REASON_WEBHOOK_NONE,
};

const importStatuses: Record<ImportStatusName, subscriptionV1.ImportProgressStatus> = {
  queued: subscriptionV1.ImportProgressStatus.IMPORT_PROGRESS_STATUS_QUEUED,
  running: subscriptionV1.ImportProgressStatus.IMPORT_PROGRESS_STATUS_RUNNING,
  retrying: subscriptionV1.ImportProgressStatus.IMPORT_PROGRESS_STATUS_RETRYING,
  completed: subscriptionV1.ImportProgressStatus.IMPORT_PROGRESS_STATUS_COMPLETED,
  failed: subscriptionV1.ImportProgressStatus.IMPORT_PROGRESS_STATUS_FAILED,
  unknown: subscriptionV1.ImportProgressStatus.IMPORT_PROGRESS_STATUS_UNKNOWN,
};

/** A sync state as the contract shows it, with the webhook it was judged by (never its key). */
export function toSyncState(state: SyncState): subscriptionV1.GetSyncStateResponse {
  const progress = state.import;
  return {
    sync: {
      state: syncStateNames[state.state],
      reason: state.reason ? degradedReasons[state.reason] : subscriptionV1.DegradedReason.DEGRADED_REASON_UNSPECIFIED,
      detail: state.detail ?? '',
      mode: state.mode ? syncModes[state.mode] : SyncMode.SYNC_MODE_UNSPECIFIED,
      modeReason: state.modeReason ?? '',
      import: progress
        ? {
            requestId: progress.requestId,
            status: importStatuses[progress.status],
            eventsImported: progress.eventsImported,
            inviteesImported: progress.inviteesImported,
            requestedAt: progress.requestedAt,
            startedAt: progress.startedAt,
            completedAt: progress.completedAt,
            pausedUntil: progress.pausedUntil,
            error: progress.error ?? '',
          }
        : undefined,
    },
    webhook: state.webhook && toWebhook(state.webhook),
  };
}

/** Each domain failure's status; `reason`: the failure's name travels as the calsync-reason trailer. */
const failures: Record<SubscriptionFailure, { code: GrpcStatus; reason?: true }> = {
  INVALID_INPUT: { code: GrpcStatus.INVALID_ARGUMENT },
  NOT_CONNECTED: { code: GrpcStatus.NOT_FOUND, reason: true },
  REAUTH_REQUIRED: { code: GrpcStatus.FAILED_PRECONDITION, reason: true },
  IDENTITY_REFUSED_USER_ID: { code: GrpcStatus.INVALID_ARGUMENT },
  IDENTITY_UNAVAILABLE: { code: GrpcStatus.UNAVAILABLE },
  CALENDLY_FORBIDDEN: { code: GrpcStatus.FAILED_PRECONDITION, reason: true },
  // By the HTTP status Calendly answered (the kit's one rule for an outside API, in toGrpcError).
  CALENDLY_FAILED: { code: GrpcStatus.UNAVAILABLE },
  CALENDLY_CALL_BROKEN: { code: GrpcStatus.INTERNAL },
  APPLICATION_SIGNING_KEY_MISSING: { code: GrpcStatus.FAILED_PRECONDITION, reason: true },
  CALLBACK_URL_TAKEN: { code: GrpcStatus.ABORTED },
  NO_WEBHOOK: { code: GrpcStatus.INTERNAL },
  RECONCILE_RUNNING: { code: GrpcStatus.ABORTED, reason: true },
  RECONCILE_LOCK_LOST: { code: GrpcStatus.UNAVAILABLE },
};

/** subscription's one table of errors as gRPC statuses (docs/errors.md); the admin service shares it. */
export function toGrpcError(error: unknown): GrpcError | undefined {
  if (error instanceof SubscriptionError) {
    const { code, reason } = failures[error.failure];
    const { cause } = error;
    const status =
      error.failure === 'CALENDLY_FAILED' && cause instanceof CalendlyError
        ? grpcStatusOfHttpFailure(cause.answeredStatus)
        : code;
    return new GrpcError(status, error.message, reason && error.failure);
  }
  if (error instanceof DeliveryRefused) {
    const answer = verifyFailureAnswers[error.failure as keyof typeof verifyFailureAnswers];
    const reason = subscriptionV1.verifyFailureToJSON(error.failure);
    return answer ? new GrpcError(answer.grpc, answer.message, reason) : new GrpcError(GrpcStatus.INTERNAL, 'refused');
  }
  if (error instanceof FleetQueryInvalid) return new GrpcError(GrpcStatus.INVALID_ARGUMENT, error.message);
  return undefined;
}

const { gateway, operator } = grpcIdentities;

/**
 * Who may call each method, by certificate name: the gateway acts for signed-in users and
 * Calendly's deliveries (the webhook a user sees comes with their sync state); a reconcile on
 * demand is an operator's command, and operators read a user's webhooks and sync state
 * (`calsync status`; no signing key is in them).
 */
export const subscriptionCallers: Callers<typeof subscriptionV1.SubscriptionServiceService> = {
  ensureUserWebhook: [gateway],
  verifyAndResolveUser: [gateway],
  // The same deliveries as VerifyAndResolveUser, many per message: the same callers.
  verifyDeliveries: [gateway],
  listUserWebhooks: [operator],
  removeUserWebhooks: [gateway],
  reconcile: [operator],
  // The gateway for the signed-in user who asked to be forgotten; an operator for any user.
  purgeUser: [gateway, operator],
  getSyncState: [gateway, operator],
};

/** The SubscriptionService gRPC adapter: validates, calls the domain, maps to the contract. */
export function subscriptionService(deps: {
  subscriptions: Subscriptions;
  verifier: Verifier;
  reconciler: Reconciler;
  syncStates: SyncStateReader;
  log: Logger;
}): ServiceBinding {
  const { subscriptions, verifier, reconciler, syncStates } = deps;
  return bindService(
    'calsync.subscription.v1.SubscriptionService',
    subscriptionV1.SubscriptionServiceService,
    {
      async ensureUserWebhook(request) {
        const { hook, created, sync } = await subscriptions.ensure(request.userId);
        return { webhook: hook && toWebhook(hook), created, ...toSyncMode(sync) };
      },
      async verifyAndResolveUser(request) {
        return { ...(await verifyDelivery(verifier, request)) };
      },
      verifyDeliveries: (stream) => verifyDeliveries(stream, { verifier, log: deps.log, toGrpcError }),
      async listUserWebhooks(request) {
        const [rows, sync, initialImport] = await Promise.all([
          subscriptions.list(request.userId),
          subscriptions.syncMode(request.userId),
          subscriptions.initialImport(request.userId),
        ]);
        return {
          webhooks: rows.map(toWebhook),
          ...toSyncMode(sync),
          lastPolledAt: sync?.lastPolledAt ?? undefined,
          initialImport,
        };
      },
      async removeUserWebhooks(request) {
        return subscriptions.remove(request.userId);
      },
      purgeUser: (request) => subscriptions.purge(request.userId),
      getSyncState: async (request) => toSyncState(await syncStates.read(request.userId)),
      async reconcile(request) {
        return request.userId ? reconciler.reconcileUser(request.userId) : reconciler.reconcileAll();
      },
    },
    subscriptionCallers,
    deps.log,
    { toGrpcError },
  );
}
