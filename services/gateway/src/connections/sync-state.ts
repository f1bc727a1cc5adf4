import { identityV1, meetingsV1, subscriptionV1 } from '@calsync/proto';

/** Every `sync.state` the user API can show (the OpenAPI document lists the same). */
export const syncStateNames = ['importing', 'live', 'degraded', 'reauth_required'] as const;
export type SyncStateName = (typeof syncStateNames)[number];

/** Every `sync.import.status`; `queued` is requested and not yet started by meetings. */
export const importStatusNames = ['queued', 'running', 'retrying', 'completed', 'failed'] as const;
export type ImportStatusName = (typeof importStatusNames)[number];

/** Why a connection is degraded. */
export const degradedReasons = [
  'import_failed',
  'webhook_pending',
  'webhook_disabled',
  'webhook_missing',
  'webhook_removing',
  'webhook_failed',
  'webhook_none',
] as const;
export type DegradedReason = (typeof degradedReasons)[number];

export const syncModeNames = ['webhook', 'polling'] as const;
export type SyncModeName = (typeof syncModeNames)[number];

/** The initial import as the user API shows it. */
export interface ImportView {
  status: ImportStatusName;
  eventsImported: number;
  inviteesImported: number;
  requestedAt: string | null;
  startedAt: string | null;
  completedAt: string | null;
  /** While it waits for the user's Calendly rate-limit window. */
  pausedUntil: string | null;
  error: string | null;
}

/**
 * How the user's meetings are being kept in sync, composed from what each owner reports:
 * identity (token health), subscription (webhook, sync mode, the import it requested) and
 * meetings (the import's progress).
 */
export interface SyncView {
  state: SyncStateName;
  /** Set when degraded. */
  reason: DegradedReason | null;
  /** Words for a person: the import's error, the webhook's last error, or why to reconnect. */
  detail: string | null;
  /** How changes reach calsync (subscription's sync mode); null when subscription reports none. */
  mode: SyncModeName | null;
  modeReason: string | null;
  import: ImportView | null;
}

/** What the owners said about one connected user. */
export interface SyncInputs {
  connection: identityV1.Connection;
  /** Subscription's ListUserWebhooks answer. */
  hooks: subscriptionV1.ListUserWebhooksResponse;
  /** The webhook the connection view shows (the active one, else the newest). */
  primaryWebhook: subscriptionV1.Webhook | undefined;
  /** Meetings' GetImportState answer, when subscription requested an import. */
  latestImport: meetingsV1.Import | undefined;
}

const iso = (date: Date | undefined) => (date ? date.toISOString() : null);

const importStatuses: Partial<Record<meetingsV1.ImportStatus, ImportStatusName>> = {
  [meetingsV1.ImportStatus.IMPORT_STATUS_RUNNING]: 'running',
  [meetingsV1.ImportStatus.IMPORT_STATUS_RETRYING]: 'retrying',
  [meetingsV1.ImportStatus.IMPORT_STATUS_COMPLETED]: 'completed',
  [meetingsV1.ImportStatus.IMPORT_STATUS_FAILED]: 'failed',
};

const syncModes: Partial<Record<subscriptionV1.SyncMode, SyncModeName>> = {
  [subscriptionV1.SyncMode.SYNC_MODE_WEBHOOK]: 'webhook',
  [subscriptionV1.SyncMode.SYNC_MODE_POLLING]: 'polling',
};

const webhookReasons: Partial<Record<subscriptionV1.WebhookState, DegradedReason>> = {
  [subscriptionV1.WebhookState.WEBHOOK_STATE_PENDING]: 'webhook_pending',
  [subscriptionV1.WebhookState.WEBHOOK_STATE_DISABLED]: 'webhook_disabled',
  [subscriptionV1.WebhookState.WEBHOOK_STATE_MISSING]: 'webhook_missing',
  [subscriptionV1.WebhookState.WEBHOOK_STATE_REMOVING]: 'webhook_removing',
  [subscriptionV1.WebhookState.WEBHOOK_STATE_FAILED]: 'webhook_failed',
};

/** The initial import subscription requested, as far as meetings has got with it. */
function importView(
  requested: subscriptionV1.InitialImport | undefined,
  latest: meetingsV1.Import | undefined,
): ImportView | null {
  if (!requested) return null;
  const started = latest && latest.requestId === requested.requestId ? latest : undefined;
  return {
    status: started ? (importStatuses[started.status] ?? 'running') : 'queued',
    eventsImported: started?.eventsImported ?? 0,
    inviteesImported: started?.inviteesImported ?? 0,
    requestedAt: iso(requested.requestedAt),
    startedAt: iso(started?.startedAt),
    completedAt: iso(started?.completedAt),
    pausedUntil: iso(started?.pausedUntil),
    error: started?.error || null,
  };
}

/**
 * The connection's sync state. In order: a refused refresh token needs the user (reauth_required);
 * an import not yet done is importing (a failed one degrades); then the way changes arrive: a
 * polled user is live, a webhook user is live only while the webhook is active.
 */
export function syncViewOf(inputs: SyncInputs): SyncView {
  const { hooks, primaryWebhook } = inputs;
  const mode = syncModes[hooks.syncMode] ?? null;
  const base = {
    mode,
    modeReason: hooks.syncModeReason || null,
    import: importView(hooks.initialImport, inputs.latestImport),
  };
  const view = (state: SyncStateName, reason: DegradedReason | null, detail: string | null): SyncView => ({
    state,
    reason,
    detail,
    ...base,
  });

  if (inputs.connection.state === identityV1.ConnectionState.CONNECTION_STATE_REAUTH_REQUIRED)
    return view('reauth_required', null, 'Calendly no longer accepts this connection: connect again');
  const imported = base.import;
  if (imported && imported.status === 'failed') return view('degraded', 'import_failed', imported.error);
  if (imported && imported.status !== 'completed') return view('importing', null, imported.error);
  if (mode === 'polling') return view('live', null, null);
  if (!primaryWebhook) return view('degraded', 'webhook_none', null);
  const reason = webhookReasons[primaryWebhook.state];
  if (reason) return view('degraded', reason, primaryWebhook.lastError || null);
  return view('live', null, null);
}
