import { subscriptionV1 } from '@calsync/proto';

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
 * How the user's meetings are being kept in sync, as subscription's GetSyncState decides it
 * (the rules live there, docs/sync-state.md); the gateway only shows it.
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

/**
 * Meetings did not tell subscription how far the import has got. The user API has no word for
 * that: the request answers 503 (try again), as it did when the gateway asked meetings itself.
 */
export class ImportProgressUnknown extends Error {
  constructor() {
    super("the import's progress is not known now");
    this.name = 'ImportProgressUnknown';
  }
}

const { SyncStateName: States, DegradedReason: Reasons, ImportProgressStatus: Statuses, SyncMode } = subscriptionV1;

const stateNames: Record<number, SyncStateName> = {
  [States.SYNC_STATE_NAME_IMPORTING]: 'importing',
  [States.SYNC_STATE_NAME_LIVE]: 'live',
  [States.SYNC_STATE_NAME_DEGRADED]: 'degraded',
  [States.SYNC_STATE_NAME_REAUTH_REQUIRED]: 'reauth_required',
};

const reasonNames: Record<number, DegradedReason> = {
  [Reasons.DEGRADED_REASON_IMPORT_FAILED]: 'import_failed',
  [Reasons.DEGRADED_REASON_WEBHOOK_PENDING]: 'webhook_pending',
  [Reasons.DEGRADED_REASON_WEBHOOK_DISABLED]: 'webhook_disabled',
  [Reasons.DEGRADED_REASON_WEBHOOK_MISSING]: 'webhook_missing',
  [Reasons.DEGRADED_REASON_WEBHOOK_REMOVING]: 'webhook_removing',
  [Reasons.DEGRADED_REASON_WEBHOOK_FAILED]: 'webhook_failed',
  [Reasons.DEGRADED_REASON_WEBHOOK_NONE]: 'webhook_none',
};

const importStatuses: Record<number, ImportStatusName> = {
  [Statuses.IMPORT_PROGRESS_STATUS_QUEUED]: 'queued',
  [Statuses.IMPORT_PROGRESS_STATUS_RUNNING]: 'running',
  [Statuses.IMPORT_PROGRESS_STATUS_RETRYING]: 'retrying',
  [Statuses.IMPORT_PROGRESS_STATUS_COMPLETED]: 'completed',
  [Statuses.IMPORT_PROGRESS_STATUS_FAILED]: 'failed',
};

const syncModes: Record<number, SyncModeName> = {
  [SyncMode.SYNC_MODE_WEBHOOK]: 'webhook',
  [SyncMode.SYNC_MODE_POLLING]: 'polling',
};

const iso = (date: Date | undefined) => (date ? date.toISOString() : null);

function importView(progress: subscriptionV1.ImportProgress | undefined): ImportView | null {
  if (!progress) return null;
  const status = importStatuses[progress.status];
  if (!status) throw new ImportProgressUnknown();
  return {
    status,
    eventsImported: progress.eventsImported,
    inviteesImported: progress.inviteesImported,
    requestedAt: iso(progress.requestedAt),
    startedAt: iso(progress.startedAt),
    completedAt: iso(progress.completedAt),
    pausedUntil: iso(progress.pausedUntil),
    error: progress.error || null,
  };
}

/** Subscription's sync state as the user API shows it; throws ImportProgressUnknown when it cannot. */
export function syncViewOf(sync: subscriptionV1.SyncState): SyncView {
  const state = stateNames[sync.state];
  if (!state) throw new Error(`subscription answered an unknown sync state ${sync.state}`);
  return {
    state,
    reason: reasonNames[sync.reason] ?? null,
    detail: sync.detail || null,
    mode: syncModes[sync.mode] ?? null,
    modeReason: sync.modeReason || null,
    import: importView(sync.import),
  };
}
