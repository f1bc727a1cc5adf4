import type { SyncModeRow } from '../polling/sync-mode-repository';
import type { WebhookRow } from '../webhooks/webhook-repository';
import { importUnknownDetail, syncStateOf, type ImportReport, type SyncInputs } from './sync-state';

const hook = (
  state: WebhookRow['state'],
  lastError: string | null = null,
  createdAt = new Date('2026-11-30T09:00:00Z'),
  calendlySubscriptionUri: string | null = `https://api.calendly.com/webhook_subscriptions/${state}`,
) =>
  ({
    hookId: `h-${state}-${createdAt.getTime()}`,
    userId: 'u1',
    state,
    lastError,
    createdAt,
    calendlySubscriptionUri,
  }) as WebhookRow;
const mode = (name: SyncModeRow['mode'], reason = '') => ({ userId: 'u1', mode: name, reason }) as SyncModeRow;
const requested = { requestId: 'import:u1', requestedAt: new Date('2026-11-30T10:00:00Z') };
const report = (fields: Partial<ImportReport>): ImportReport => ({
  requestId: requested.requestId,
  status: 'completed',
  eventsImported: 0,
  inviteesImported: 0,
  startedAt: undefined,
  completedAt: undefined,
  pausedUntil: undefined,
  error: '',
  ...fields,
});

function inputs(overrides: Partial<SyncInputs> = {}): SyncInputs {
  return {
    connection: 'active',
    hooks: [hook('active')],
    syncMode: mode('webhook'),
    requested,
    latest: report({ eventsImported: 3, inviteesImported: 4 }),
    ...overrides,
  };
}

describe('the connection sync state', () => {
  it('is live when the import is done and the webhook active', () => {
    expect(syncStateOf(inputs())).toMatchObject({
      state: 'live',
      reason: null,
      mode: 'webhook',
      import: { status: 'completed', eventsImported: 3, inviteesImported: 4 },
    });
  });

  it('is importing while meetings has not started the requested import, or runs or retries it', () => {
    expect(syncStateOf(inputs({ latest: undefined }))).toMatchObject({
      state: 'importing',
      import: { status: 'queued', eventsImported: 0, requestedAt: requested.requestedAt, startedAt: undefined },
    });
    // An older import (a previous Calendly account) is not this one.
    const older = report({ requestId: 'import:old' });
    expect(syncStateOf(inputs({ latest: older })).import?.status).toBe('queued');
    const pausedUntil = new Date('2026-11-30T10:01:00Z');
    expect(
      syncStateOf(inputs({ latest: report({ status: 'running', eventsImported: 7, pausedUntil }) })),
    ).toMatchObject({
      state: 'importing',
      import: { status: 'running', eventsImported: 7, pausedUntil },
    });
    const retrying = report({ status: 'retrying', error: 'calendly listScheduledEvents failed: 503' });
    expect(syncStateOf(inputs({ latest: retrying }))).toMatchObject({
      state: 'importing',
      detail: 'calendly listScheduledEvents failed: 503',
    });
  });

  it('is degraded with a reason when the import failed or the webhook is not active', () => {
    const failed = report({ status: 'failed', error: "the user's Calendly connection cannot be used" });
    expect(syncStateOf(inputs({ latest: failed }))).toMatchObject({
      state: 'degraded',
      reason: 'import_failed',
      detail: "the user's Calendly connection cannot be used",
    });
    expect(syncStateOf(inputs({ hooks: [hook('disabled', 'disabled by Calendly')] }))).toMatchObject({
      state: 'degraded',
      reason: 'webhook_disabled',
      detail: 'disabled by Calendly',
    });
    expect(syncStateOf(inputs({ hooks: [hook('failed')] }))).toMatchObject({
      state: 'degraded',
      reason: 'webhook_failed',
    });
    expect(syncStateOf(inputs({ hooks: [], syncMode: undefined }))).toMatchObject({
      state: 'degraded',
      reason: 'webhook_none',
      mode: null,
    });
  });

  it('judges by the active webhook, else the newest Calendly holds, else the newest', () => {
    const older = hook('active', null, new Date('2026-11-01T00:00:00Z'));
    const newer = hook('failed', 'create failed', new Date('2026-11-30T00:00:00Z'));
    expect(syncStateOf(inputs({ hooks: [newer, older] }))).toMatchObject({ state: 'live', webhook: older });
    const newest = hook('missing', null, new Date('2026-12-01T00:00:00Z'));
    expect(syncStateOf(inputs({ hooks: [newer, newest] }))).toMatchObject({
      reason: 'webhook_missing',
      webhook: newest,
    });
    // Calendly disabled the webhook and its replacement is not confirmed yet: the disabled one tells.
    const disabled = hook('disabled', 'Calendly failed createWebhookSubscription (HTTP 503)', older.createdAt);
    const replacement = hook('pending', null, newest.createdAt, null);
    expect(syncStateOf(inputs({ hooks: [disabled, replacement] }))).toMatchObject({
      reason: 'webhook_disabled',
      detail: 'Calendly failed createWebhookSubscription (HTTP 503)',
      webhook: disabled,
    });
    // Nothing ever reached Calendly: the newest attempt tells.
    const firstTry = hook('pending', null, newest.createdAt, null);
    expect(syncStateOf(inputs({ hooks: [hook('failed', 'refused', older.createdAt, null), firstTry] }))).toMatchObject({
      reason: 'webhook_pending',
      webhook: firstTry,
    });
  });

  it('is live without a webhook when subscription polls the user, with the mode and its reason', () => {
    const polled = inputs({ hooks: [], syncMode: mode('polling', 'webhook_not_allowed') });
    expect(syncStateOf(polled)).toMatchObject({ state: 'live', mode: 'polling', modeReason: 'webhook_not_allowed' });
  });

  it('asks for a new connect when identity cannot refresh the token, whatever else holds', () => {
    const reauth = inputs({ connection: 'reauth_required', hooks: [hook('disabled')], latest: 'unknown' });
    expect(syncStateOf(reauth)).toMatchObject({ state: 'reauth_required', reason: null, detail: expect.any(String) });
  });

  it('has no import for a connection from before imports on connect', () => {
    expect(syncStateOf(inputs({ requested: undefined, latest: undefined }))).toMatchObject({
      state: 'live',
      import: null,
    });
  });

  it('decides from the rest, and says so, when meetings cannot tell how far the import has got', () => {
    expect(syncStateOf(inputs({ latest: 'unknown' }))).toMatchObject({
      state: 'live',
      detail: importUnknownDetail,
      import: { status: 'unknown', requestId: requested.requestId, requestedAt: requested.requestedAt },
    });
    expect(syncStateOf(inputs({ latest: 'unknown', hooks: [hook('disabled', 'disabled by Calendly')] }))).toMatchObject(
      { state: 'degraded', reason: 'webhook_disabled', detail: 'disabled by Calendly', import: { status: 'unknown' } },
    );
  });
});
