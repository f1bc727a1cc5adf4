import { subscriptionV1 } from '@calsync/proto';
import { ImportProgressUnknown, syncViewOf } from './sync-state';

const { SyncStateName, DegradedReason, ImportProgressStatus, SyncMode } = subscriptionV1;

// The rules live in subscription (its sync-state tests); the gateway only shows what GetSyncState decided.
describe('the sync state as the user API shows it', () => {
  it('names what subscription decided, with nulls for what it left empty', () => {
    const requestedAt = new Date('2026-11-30T10:00:00Z');
    const sync = subscriptionV1.SyncState.fromPartial({
      state: SyncStateName.SYNC_STATE_NAME_DEGRADED,
      reason: DegradedReason.DEGRADED_REASON_WEBHOOK_DISABLED,
      detail: 'disabled by Calendly',
      mode: SyncMode.SYNC_MODE_WEBHOOK,
      import: { requestId: 'import:u1', status: ImportProgressStatus.IMPORT_PROGRESS_STATUS_COMPLETED, requestedAt },
    });
    expect(syncViewOf(sync)).toEqual({
      state: 'degraded',
      reason: 'webhook_disabled',
      detail: 'disabled by Calendly',
      mode: 'webhook',
      modeReason: null,
      import: {
        status: 'completed',
        eventsImported: 0,
        inviteesImported: 0,
        requestedAt: requestedAt.toISOString(),
        startedAt: null,
        completedAt: null,
        pausedUntil: null,
        error: null,
      },
    });
    expect(syncViewOf(subscriptionV1.SyncState.fromPartial({ state: SyncStateName.SYNC_STATE_NAME_LIVE }))).toEqual({
      state: 'live',
      reason: null,
      detail: null,
      mode: null,
      modeReason: null,
      import: null,
    });
  });

  it('cannot show an import whose progress meetings did not report: the request is answered 503', () => {
    const unknown = subscriptionV1.SyncState.fromPartial({
      state: SyncStateName.SYNC_STATE_NAME_LIVE,
      import: { requestId: 'import:u1', status: ImportProgressStatus.IMPORT_PROGRESS_STATUS_UNKNOWN },
    });
    expect(() => syncViewOf(unknown)).toThrow(ImportProgressUnknown);
  });
});
