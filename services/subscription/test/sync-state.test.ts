import { accessTokenExpired, failureOf } from '@calsync/identity/testing';
import { subscriptionV1 } from '@calsync/proto';
import { grpcIdentities, GrpcStatus } from '@calsync/service-kit';
import { clientAs } from '@calsync/service-kit/testing';
import { disableAtSimulator, startHarness, waitFor, type Harness, type SubscriptionClient } from './harness';

const { SyncStateName, DegradedReason, ImportProgressStatus, SyncMode, WebhookState } = subscriptionV1;

let h: Harness;

beforeAll(async () => {
  // A real meetings runs the import on connect and reports its progress.
  h = await startHarness('syncstate', { meetings: true });
}, 120_000);

afterAll(() => h?.stop());

const syncOf = async (userId: string, client: SubscriptionClient = h.subscription) =>
  (await client.getSyncState({ userId })).sync!;

/** Polls GetSyncState until `done` holds, with a deadline. */
const syncUntil = (userId: string, done: (sync: subscriptionV1.SyncState) => boolean, what: string) =>
  waitFor(
    async () => {
      const sync = await syncOf(userId);
      return done(sync) ? sync : undefined;
    },
    { timeoutMs: 30_000, what },
  );

async function connectLive(userId: string) {
  const user = await h.connectWithToken(userId);
  await h.subscription.ensureUserWebhook({ userId });
  await syncUntil(userId, (sync) => sync.state === SyncStateName.SYNC_STATE_NAME_LIVE, `${userId} to be live`);
  return user;
}

it('is importing until meetings has imported what Calendly holds, then live, with the webhook it judged by', async () => {
  await h.connectWithToken('sync-new');
  const ensured = await h.subscription.ensureUserWebhook({ userId: 'sync-new' });
  const first = await h.subscription.getSyncState({ userId: 'sync-new' });
  // Right after connect the import is queued or running (or, on a fast machine, already done).
  expect([SyncStateName.SYNC_STATE_NAME_IMPORTING, SyncStateName.SYNC_STATE_NAME_LIVE]).toContain(first.sync!.state);
  expect(first.sync!.import).toMatchObject({ requestId: expect.any(String), requestedAt: expect.any(Date) });

  const live = await syncUntil('sync-new', (sync) => sync.state === SyncStateName.SYNC_STATE_NAME_LIVE, 'live');
  expect(live).toMatchObject({
    reason: DegradedReason.DEGRADED_REASON_UNSPECIFIED,
    detail: '',
    mode: SyncMode.SYNC_MODE_WEBHOOK,
    import: { status: ImportProgressStatus.IMPORT_PROGRESS_STATUS_COMPLETED, completedAt: expect.any(Date) },
  });
  const { webhook } = await h.subscription.getSyncState({ userId: 'sync-new' });
  expect(webhook).toMatchObject({ hookId: ensured.webhook!.hookId, state: WebhookState.WEBHOOK_STATE_ACTIVE });
});

it('is degraded while Calendly has disabled the webhook and it cannot be replaced, and live once reconcile replaces it', async () => {
  const user = await connectLive('sync-disabled');
  await disableAtSimulator(h, user);
  // Calendly lists the subscription as disabled, but refuses the replacement for now.
  await h.sim_('/_sim/faults', {
    body: { api_errors: { status: 503, count: 100, path: '/webhook_subscriptions', method: 'POST' } },
  });
  expect(await h.subscription.reconcile({ userId: 'sync-disabled' })).toMatchObject({ failed: 1 });
  const degraded = await syncOf('sync-disabled');
  expect(degraded).toMatchObject({
    state: SyncStateName.SYNC_STATE_NAME_DEGRADED,
    reason: DegradedReason.DEGRADED_REASON_WEBHOOK_DISABLED,
    detail: expect.stringMatching(/\S/),
  });

  await h.sim_('/_sim/faults', { method: 'DELETE' });
  expect(await h.subscription.reconcile({ userId: 'sync-disabled' })).toMatchObject({ recreated: 1, failed: 0 });
  expect(await syncOf('sync-disabled')).toMatchObject({
    state: SyncStateName.SYNC_STATE_NAME_LIVE,
    reason: DegradedReason.DEGRADED_REASON_UNSPECIFIED,
  });
});

it('asks for a new connect once Calendly refuses the refresh token, whatever else holds', async () => {
  // Short-lived tokens until the user's are revoked, so that identity must soon refresh theirs (a
  // token issued after the setting went back would outlive the test).
  const { accessTokenTtlSeconds } = (await h.sim_('/_sim/settings')) as { accessTokenTtlSeconds: number };
  await h.sim_('/_sim/settings', { body: { accessTokenTtlSeconds: 2 } });
  try {
    const user = await h.connectWithOAuth('sync-revoked');
    await h.subscription.ensureUserWebhook({ userId: 'sync-revoked' });
    // The user removes calsync from their Calendly account.
    await h.sim_(`/_sim/users/${user.uuid}/revoke_access`, { method: 'POST', body: {} });
  } finally {
    await h.sim_('/_sim/settings', { body: { accessTokenTtlSeconds } });
  }
  await accessTokenExpired(h.database.url, 'sync-revoked');

  // The next call that needs the token finds out: here, a reconcile.
  await h.subscription.reconcile({ userId: 'sync-revoked' });
  expect(await syncOf('sync-revoked')).toMatchObject({
    state: SyncStateName.SYNC_STATE_NAME_REAUTH_REQUIRED,
    reason: DegradedReason.DEGRADED_REASON_UNSPECIFIED,
    detail: expect.stringContaining('connect again'),
  });
});

it('still answers when meetings cannot be reached: the import is unknown, the rest decides', async () => {
  await connectLive('sync-nomeetings');
  const alone = await h.startReplica({ MEETINGS_ADDR: '127.0.0.1:1' });
  const sync = await syncOf('sync-nomeetings', alone.client);
  expect(sync).toMatchObject({
    state: SyncStateName.SYNC_STATE_NAME_LIVE,
    detail: expect.stringContaining('meetings could not be reached'),
    import: { status: ImportProgressStatus.IMPORT_PROGRESS_STATUS_UNKNOWN, requestId: expect.any(String) },
  });
});

it('refuses a user without a connection, a bad user id, and callers other than the gateway and operators', async () => {
  expect(await failureOf(h.subscription.getSyncState({ userId: 'sync-stranger' }))).toMatchObject({
    code: GrpcStatus.NOT_FOUND,
    reason: 'NOT_CONNECTED',
  });
  expect(await failureOf(h.subscription.getSyncState({ userId: '' }))).toMatchObject({
    code: GrpcStatus.INVALID_ARGUMENT,
  });
  expect(await failureOf(h.subscription.getSyncState({ userId: 'x'.repeat(201) }))).toMatchObject({
    code: GrpcStatus.INVALID_ARGUMENT,
  });
  const address = `127.0.0.1:${h.app.ports.grpc}`;
  const operator = await clientAs(grpcIdentities.operator, subscriptionV1.SubscriptionServiceService, address);
  const meetings = await clientAs(grpcIdentities.meetings, subscriptionV1.SubscriptionServiceService, address);
  try {
    await connectLive('sync-operated');
    expect((await operator.getSyncState({ userId: 'sync-operated' })).sync).toMatchObject({
      state: SyncStateName.SYNC_STATE_NAME_LIVE,
    });
    expect(await failureOf(meetings.getSyncState({ userId: 'sync-operated' }))).toMatchObject({
      code: GrpcStatus.PERMISSION_DENIED,
    });
  } finally {
    operator.close();
    meetings.close();
  }
});
