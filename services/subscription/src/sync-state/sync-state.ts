import type { SyncModeName, SyncModeRow } from '../polling/sync-mode-repository';
import type { WebhookRow } from '../webhooks/webhook-repository';

/** Every sync state a connected user can be in (docs/sync-state.md). */
export const syncStateNames = ['importing', 'live', 'degraded', 'reauth_required'] as const;
export type SyncStateName = (typeof syncStateNames)[number];

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

/** The import on connect: `queued` is requested and not yet started by meetings; `unknown`: meetings did not answer. */
export const importStatusNames = ['queued', 'running', 'retrying', 'completed', 'failed', 'unknown'] as const;
export type ImportStatusName = (typeof importStatusNames)[number];

/** What meetings reports of a user's newest import (its GetImportState). */
export interface ImportReport {
  requestId: string;
  status: 'running' | 'retrying' | 'completed' | 'failed';
  eventsImported: number;
  inviteesImported: number;
  startedAt: Date | undefined;
  completedAt: Date | undefined;
  pausedUntil: Date | undefined;
  error: string;
}

/** The import this service requested, as far as meetings has got with it. */
export interface ImportProgress {
  requestId: string;
  status: ImportStatusName;
  eventsImported: number;
  inviteesImported: number;
  requestedAt: Date;
  startedAt: Date | undefined;
  completedAt: Date | undefined;
  pausedUntil: Date | undefined;
  error: string | null;
}

/** How one connected user's meetings are kept in sync. */
export interface SyncState {
  state: SyncStateName;
  /** Set when degraded. */
  reason: DegradedReason | null;
  /** Words for a person: the import's error, the webhook's last error, why to reconnect, or what is unknown. */
  detail: string | null;
  mode: SyncModeName | null;
  modeReason: string | null;
  import: ImportProgress | null;
  /** The webhook the state was judged by (primaryWebhook). */
  webhook: WebhookRow | undefined;
}

/** What the owners said about one connected user. */
export interface SyncInputs {
  /** identity's connection state. */
  connection: 'active' | 'reauth_required';
  /** This service's hooks of the user (legacy ones included). */
  hooks: WebhookRow[];
  syncMode: SyncModeRow | undefined;
  /** The import on connect this service requested, if any. */
  requested: { requestId: string; requestedAt: Date } | undefined;
  /** meetings' newest import of the user; `unknown` when meetings could not be reached. */
  latest: ImportReport | undefined | 'unknown';
}

export const reauthDetail = 'Calendly no longer accepts this connection: connect again';
export const importUnknownDetail = "meetings could not be reached: the import's progress is not known now";

const webhookReasons: Partial<Record<WebhookRow['state'], DegradedReason>> = {
  pending: 'webhook_pending',
  disabled: 'webhook_disabled',
  missing: 'webhook_missing',
  removing: 'webhook_removing',
  failed: 'webhook_failed',
};

/**
 * The webhook a user's sync is judged by: the active one; else the newest that Calendly holds
 * (a replacement not yet confirmed says less than the disabled or missing one it replaces);
 * else the newest.
 */
export function primaryWebhook(hooks: WebhookRow[]): WebhookRow | undefined {
  const newest = (rows: WebhookRow[]) => [...rows].sort((a, b) => b.createdAt.getTime() - a.createdAt.getTime())[0];
  return (
    newest(hooks.filter((hook) => hook.state === 'active')) ??
    newest(hooks.filter((hook) => hook.calendlySubscriptionUri)) ??
    newest(hooks)
  );
}

function importProgress(requested: SyncInputs['requested'], latest: SyncInputs['latest']): ImportProgress | null {
  if (!requested) return null;
  const base = { requestId: requested.requestId, requestedAt: requested.requestedAt };
  if (latest === 'unknown') {
    return {
      ...base,
      status: 'unknown',
      eventsImported: 0,
      inviteesImported: 0,
      startedAt: undefined,
      completedAt: undefined,
      pausedUntil: undefined,
      error: null,
    };
  }
  // An older import (a previous Calendly account) is not this one.
  const started = latest && latest.requestId === requested.requestId ? latest : undefined;
  return {
    ...base,
    status: started ? started.status : 'queued',
    eventsImported: started?.eventsImported ?? 0,
    inviteesImported: started?.inviteesImported ?? 0,
    startedAt: started?.startedAt,
    completedAt: started?.completedAt,
    pausedUntil: started?.pausedUntil,
    error: started?.error || null,
  };
}

/**
 * The user's sync state. In order: a refused refresh token needs the user (reauth_required); an
 * import not yet done is importing (a failed one degrades); then the way changes arrive: a polled
 * user is live, a webhook user is live only while the webhook is active. An import whose progress
 * is unknown (meetings did not answer) decides nothing: the rest does, and the detail says so.
 */
export function syncStateOf(inputs: SyncInputs): SyncState {
  const webhook = primaryWebhook(inputs.hooks);
  const imported = importProgress(inputs.requested, inputs.latest);
  const unknownImport = imported?.status === 'unknown';
  const base = {
    mode: inputs.syncMode?.mode ?? null,
    modeReason: inputs.syncMode?.reason || null,
    import: imported,
    webhook,
  };
  const answer = (state: SyncStateName, reason: DegradedReason | null, detail: string | null): SyncState => ({
    state,
    reason,
    detail: detail ?? (unknownImport ? importUnknownDetail : null),
    ...base,
  });

  if (inputs.connection === 'reauth_required') return answer('reauth_required', null, reauthDetail);
  if (imported && imported.status === 'failed') return answer('degraded', 'import_failed', imported.error);
  if (imported && !unknownImport && imported.status !== 'completed') return answer('importing', null, imported.error);
  if (base.mode === 'polling') return answer('live', null, null);
  if (!webhook) return answer('degraded', 'webhook_none', null);
  const reason = webhookReasons[webhook.state];
  if (reason) return answer('degraded', reason, webhook.lastError || null);
  return answer('live', null, null);
}
