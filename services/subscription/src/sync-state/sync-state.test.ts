import { identityV1, meetingsV1, subscriptionV1 } from '@calsync/proto';
import { syncViewOf, type SyncInputs } from './sync-state';

const connection = (state = identityV1.ConnectionState.CONNECTION_STATE_ACTIVE) =>
  identityV1.Connection.fromPartial({ userId: 'u1', state });
const hook = (state: subscriptionV1.WebhookState, lastError = '') =>
  subscriptionV1.Webhook.fromPartial({ hookId: 'h1', state, lastError });
const requested = { requestId: 'import:u1', requestedAt: new Date('2026-11-30T10:00:00Z') };

function inputs(
  overrides: Partial<Omit<SyncInputs, 'hooks'>> & { hooks?: Partial<subscriptionV1.ListUserWebhooksResponse> } = {},
) {
  const hooks = subscriptionV1.ListUserWebhooksResponse.fromPartial({
    syncMode: subscriptionV1.SyncMode.SYNC_MODE_WEBHOOK,
    initialImport: requested,
    ...overrides.hooks,
  });
  return {
    connection: overrides.connection ?? connection(),
    hooks,
    primaryWebhook:
      'primaryWebhook' in overrides ? overrides.primaryWebhook : hook(subscriptionV1.WebhookState.WEBHOOK_STATE_ACTIVE),
    latestImport:
      'latestImport' in overrides
        ? overrides.latestImport
        : meetingsV1.Import.fromPartial({
            requestId: requested.requestId,
            status: meetingsV1.ImportStatus.IMPORT_STATUS_COMPLETED,
            eventsImported: 3,
            inviteesImported: 4,
          }),
  };
}

describe('the connection sync state', () => {
  it('is live when the import is done and the webhook active', () => {
    expect(syncViewOf(inputs())).toMatchObject({
      state: 'live',
      reason: null,
      mode: 'webhook',
      import: { status: 'completed', eventsImported: 3, inviteesImported: 4 },
    });
  });

  it('is importing while meetings has not started the requested import, or runs or retries it', () => {
    expect(syncViewOf(inputs({ latestImport: undefined }))).toMatchObject({
      state: 'importing',
      import: { status: 'queued', eventsImported: 0, requestedAt: '2026-11-30T10:00:00.000Z', startedAt: null },
    });
    // An older import (a previous Calendly account) is not this one.
    const older = meetingsV1.Import.fromPartial({
      requestId: 'import:old',
      status: meetingsV1.ImportStatus.IMPORT_STATUS_COMPLETED,
    });
    expect(syncViewOf(inputs({ latestImport: older })).import?.status).toBe('queued');
    const pausedUntil = new Date('2026-11-30T10:01:00Z');
    const running = meetingsV1.Import.fromPartial({
      requestId: requested.requestId,
      status: meetingsV1.ImportStatus.IMPORT_STATUS_RUNNING,
      eventsImported: 7,
      pausedUntil,
    });
    expect(syncViewOf(inputs({ latestImport: running }))).toMatchObject({
      state: 'importing',
      import: { status: 'running', eventsImported: 7, pausedUntil: pausedUntil.toISOString() },
    });
    const retrying = meetingsV1.Import.fromPartial({
      requestId: requested.requestId,
      status: meetingsV1.ImportStatus.IMPORT_STATUS_RETRYING,
      error: 'calendly listScheduledEvents failed: 503',
    });
    expect(syncViewOf(inputs({ latestImport: retrying }))).toMatchObject({
      state: 'importing',
      detail: 'calendly listScheduledEvents failed: 503',
    });
  });

  it('is degraded with a reason when the import failed or the webhook is not active', () => {
    const failed = meetingsV1.Import.fromPartial({
      requestId: requested.requestId,
      status: meetingsV1.ImportStatus.IMPORT_STATUS_FAILED,
      error: "the user's Calendly connection cannot be used",
    });
    expect(syncViewOf(inputs({ latestImport: failed }))).toMatchObject({
      state: 'degraded',
      reason: 'import_failed',
      detail: "the user's Calendly connection cannot be used",
    });
    const disabled = hook(subscriptionV1.WebhookState.WEBHOOK_STATE_DISABLED, 'disabled by Calendly');
    expect(syncViewOf(inputs({ primaryWebhook: disabled }))).toMatchObject({
      state: 'degraded',
      reason: 'webhook_disabled',
      detail: 'disabled by Calendly',
    });
    expect(
      syncViewOf(inputs({ primaryWebhook: hook(subscriptionV1.WebhookState.WEBHOOK_STATE_FAILED) })),
    ).toMatchObject({ state: 'degraded', reason: 'webhook_failed' });
    expect(syncViewOf(inputs({ primaryWebhook: undefined, hooks: { syncMode: 0 } }))).toMatchObject({
      state: 'degraded',
      reason: 'webhook_none',
      mode: null,
    });
  });

  it('is live without a webhook when subscription polls the user, with the mode and its reason', () => {
    const polled = inputs({
      primaryWebhook: undefined,
      hooks: { syncMode: subscriptionV1.SyncMode.SYNC_MODE_POLLING, syncModeReason: 'webhook_not_allowed' },
    });
    expect(syncViewOf(polled)).toMatchObject({ state: 'live', mode: 'polling', modeReason: 'webhook_not_allowed' });
  });

  it('asks for a new connect when identity cannot refresh the token, whatever else holds', () => {
    const reauth = inputs({ connection: connection(identityV1.ConnectionState.CONNECTION_STATE_REAUTH_REQUIRED) });
    expect(syncViewOf(reauth)).toMatchObject({ state: 'reauth_required', reason: null, detail: expect.any(String) });
  });

  it('has no import for a connection from before imports on connect', () => {
    expect(syncViewOf(inputs({ hooks: { initialImport: undefined }, latestImport: undefined }))).toMatchObject({
      state: 'live',
      import: null,
    });
  });
});
