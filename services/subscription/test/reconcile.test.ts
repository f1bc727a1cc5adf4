import { subscribedEvents } from '@calsync/calendly-client';
import { subscriptionV1 } from '@calsync/proto';
import { GrpcStatus } from '@calsync/service-kit';
import { Client } from 'pg';
import {
  backfillRequests,
  disableAtSimulator,
  book,
  bookAndReceive,
  simDeliveriesSettled,
  deliveriesOf,
  waitFor,
  hookIdOf,
  refusalOf,
  simSubscriptions,
  startHarness,
  type Harness,
  type SimUser,
} from './harness';

const { WebhookState } = subscriptionV1;

let h: Harness;

beforeAll(async () => {
  h = await startHarness('reconcile');
});

afterAll(() => h?.stop());

const deliveryTo = (user: SimUser, hookId: string) => bookAndReceive(h, user, hookId);

async function connectAndEnsure(userId: string) {
  const user = await h.connectWithToken(userId);
  const { webhook } = await h.subscription.ensureUserWebhook({ userId });
  return { user, webhook: webhook! };
}

it('restores delivery after Calendly disabled the hook, and asks for the missed window', async () => {
  const { user, webhook } = await connectAndEnsure('rec-disabled');
  expect(await deliveryTo(user, webhook.hookId)).toMatchObject({ outcome: 'ok' });
  await disableAtSimulator(h, user);
  const disabledAt = Date.now();

  // Nothing arrives while it is disabled.
  const missed = await book(h, user, 'missed');
  await simDeliveriesSettled(h);
  expect(deliveriesOf(h, missed)).toEqual([]);

  const summary = await h.subscription.reconcile({ userId: 'rec-disabled' });
  expect(summary).toMatchObject({ usersChecked: 1, recreated: 1, backfillsRequested: 1, failed: 0 });
  const { webhooks } = await h.subscription.listUserWebhooks({ userId: 'rec-disabled' });
  expect(webhooks).toHaveLength(1);
  const replacement = webhooks[0]!;
  expect(replacement.hookId).not.toBe(webhook.hookId);
  expect(replacement.state).toBe(WebhookState.WEBHOOK_STATE_ACTIVE);
  expect((await simSubscriptions(h, user)).map((s) => [hookIdOf(s.callback_url), s.state])).toEqual([
    [replacement.hookId, 'active'],
  ]);
  expect(await deliveryTo(user, replacement.hookId)).toMatchObject({ outcome: 'ok', userId: 'rec-disabled' });

  const backfill = (await backfillRequests(h)).find(
    (request) => request.userId === 'rec-disabled' && request.msgId.startsWith('backfill:'),
  );
  expect(backfill).toMatchObject({ calendlyUserUri: user.uri, msgId: `backfill:${replacement.hookId}` });
  expect(backfill!.windowStart!.getTime()).toBeLessThanOrEqual(disabledAt);
  expect(backfill!.windowEnd!.getTime()).toBeGreaterThan(Date.now());

  // The old hook is gone: a late retry to it is refused.
  expect(await refusalOf(h, webhook.hookId)).toBe('VERIFY_FAILURE_HOOK_NOT_FOUND');
});

it('recreates a subscription deleted at Calendly behind our back', async () => {
  const { user, webhook } = await connectAndEnsure('rec-missing');
  await h.sim_(`/webhook_subscriptions/${webhook.calendlySubscriptionUri.split('/').pop()}`, {
    method: 'DELETE',
    token: user.personal_access_token,
  });
  const summary = await h.subscription.reconcile({ userId: 'rec-missing' });
  expect(summary).toMatchObject({ recreated: 1 });
  const [replacement] = (await h.subscription.listUserWebhooks({ userId: 'rec-missing' })).webhooks;
  expect(replacement!.hookId).not.toBe(webhook.hookId);
  expect(await deliveryTo(user, replacement!.hookId)).toMatchObject({ outcome: 'ok' });
});

it('moves a hook created before an event was supported onto one subscribed to every event', async () => {
  const { user, webhook } = await connectAndEnsure('rec-outdated');
  // The hook as an older calsync created it: the same callback URL, without the no-show events.
  await h.sim_(`/webhook_subscriptions/${webhook.calendlySubscriptionUri.split('/').pop()}`, {
    method: 'DELETE',
    token: user.personal_access_token,
  });
  await h.sim_('/webhook_subscriptions', {
    token: user.personal_access_token,
    body: {
      url: webhook.callbackUrl,
      events: ['invitee.created', 'invitee.canceled'],
      organization: user.organization,
      user: user.uri,
      scope: 'user',
    },
  });

  const summary = await h.subscription.reconcile({ userId: 'rec-outdated' });
  expect(summary).toMatchObject({ recreated: 1, backfillsRequested: 0, failed: 0 });
  const { webhooks } = await h.subscription.listUserWebhooks({ userId: 'rec-outdated' });
  expect(webhooks).toHaveLength(1);
  expect(webhooks[0]!.hookId).not.toBe(webhook.hookId);
  expect((await simSubscriptions(h, user)).map((s) => [hookIdOf(s.callback_url), [...s.events].sort()])).toEqual([
    [webhooks[0]!.hookId, [...subscribedEvents].sort()],
  ]);
  expect(await deliveryTo(user, webhooks[0]!.hookId)).toMatchObject({ outcome: 'ok', userId: 'rec-outdated' });

  // A hook with every event is left as it is.
  expect(await h.subscription.reconcile({ userId: 'rec-outdated' })).toMatchObject({ recreated: 0, failed: 0 });
});

it('deletes orphans pointing at our callback URL and leaves every other subscription alone', async () => {
  const { user, webhook } = await connectAndEnsure('rec-orphans');
  const create = (url: string) =>
    h.sim_('/webhook_subscriptions', {
      token: user.personal_access_token,
      body: { url, events: ['invitee.created'], organization: user.organization, scope: 'user', user: user.uri },
    });
  await create(`${h.receiver.url}/webhooks/calendly/${'Orphan_'.padEnd(32, 'x')}`);
  await create('https://elsewhere.example/hooks/calendly');
  const before = (await h.subscription.listUserWebhooks({ userId: 'rec-orphans' })).webhooks[0]!;

  const summary = await h.subscription.reconcile({ userId: 'rec-orphans' });
  expect(summary).toMatchObject({ healthy: 1, orphansDeleted: 1, recreated: 0 });
  expect((await simSubscriptions(h, user)).map((s) => s.callback_url).sort()).toEqual(
    [webhook.callbackUrl, 'https://elsewhere.example/hooks/calendly'].sort(),
  );
  const after = (await h.subscription.listUserWebhooks({ userId: 'rec-orphans' })).webhooks[0]!;
  expect(after.lastVerifiedAt!.getTime()).toBeGreaterThan(before.lastVerifiedAt!.getTime());
  expect(after.lastError).toBe('');
});

it('records why a hook could not be repaired', async () => {
  const { user } = await connectAndEnsure('rec-broken');
  await disableAtSimulator(h, user);
  await h.sim_('/_sim/faults', { body: { api_errors: { status: 503, count: 50, path: '/webhook_subscriptions' } } });
  try {
    const summary = await h.subscription.reconcile({ userId: 'rec-broken' });
    expect(summary).toMatchObject({ failed: 1, recreated: 0 });
  } finally {
    await h.sim_('/_sim/faults', { method: 'DELETE' });
  }
  const [kept] = (await h.subscription.listUserWebhooks({ userId: 'rec-broken' })).webhooks;
  expect(kept!.lastError).toMatch(/Calendly/);
});

it('forgets the hooks of a user whose connection is gone, and refuses their deliveries', async () => {
  const { webhook } = await connectAndEnsure('rec-gone');
  await h.identity.disconnect({ userId: 'rec-gone' });
  const summary = await h.subscription.reconcile({ userId: 'rec-gone' });
  expect(summary).toMatchObject({ usersDisconnected: 1 });
  expect((await h.subscription.listUserWebhooks({ userId: 'rec-gone' })).webhooks).toEqual([]);
  expect(await refusalOf(h, webhook.hookId)).toBe('VERIFY_FAILURE_HOOK_NOT_FOUND');
});

it('reconciles every user on its interval, and on demand', async () => {
  const { user, webhook } = await connectAndEnsure('rec-interval');
  const all = await h.subscription.reconcile({ userId: '' });
  expect(all.usersChecked).toBeGreaterThanOrEqual(5);
  expect(all.failed).toBe(0);

  await disableAtSimulator(h, user);
  const replica = await h.startReplica({ RECONCILE_INTERVAL_SECONDS: '1', RECONCILE_CONCURRENCY: '2' });
  const replaced = await waitFor(async () => {
    const [current] = (await h.subscription.listUserWebhooks({ userId: 'rec-interval' })).webhooks;
    return current && current.hookId !== webhook.hookId && current.state === WebhookState.WEBHOOK_STATE_ACTIVE
      ? current
      : undefined;
  });
  await replica.app.stop();
  expect(await deliveryTo(user, replaced.hookId)).toMatchObject({ outcome: 'ok' });
  const metrics = await (await fetch(`http://127.0.0.1:${h.app.ports.metrics}/metrics`)).text();
  expect(metrics).toMatch(/subscription_reconcile_results_total\{[^}]*outcome="healthy"/);
});

it('counts a run that outlasts its interval', async () => {
  await connectAndEnsure('rec-overrun');
  // Every Calendly answer takes longer than the whole interval, so the first timed run overruns.
  await h.sim_('/_sim/faults', { body: { latency: { api_ms: 1_200 } } });
  try {
    const replica = await h.startReplica({ RECONCILE_INTERVAL_SECONDS: '1' });
    await waitFor(
      async () => {
        const metrics = await (await fetch(`http://127.0.0.1:${replica.app.ports.metrics}/metrics`)).text();
        return /^subscription_reconcile_overruns_total\{[^}]*\} [1-9]/m.test(metrics);
      },
      { what: 'an overrun counted', timeoutMs: 30_000 },
    );
    await replica.app.stop();
  } finally {
    await h.sim_('/_sim/faults', { method: 'DELETE' });
  }
  // The harness's own service runs no timed reconcile: it never counts one.
  const metrics = await (await fetch(`http://127.0.0.1:${h.app.ports.metrics}/metrics`)).text();
  expect(metrics).toMatch(/^subscription_reconcile_overruns_total\{[^}]*\} 0$/m);
});

it('stops a run whose lock connection is cut, keeps serving, and runs again when asked', async () => {
  await connectAndEnsure('rec-cut');
  const admin = new Client({ connectionString: h.database.url });
  await admin.connect();
  try {
    // Slow Calendly keeps the run going long enough to cut its connection halfway.
    await h.sim_('/_sim/faults', { body: { latency: { api_ms: 500 } } });
    const run = h.subscription.reconcile({ userId: '' }).then(
      () => 'finished',
      (error: unknown) => (error as { code: number }).code,
    );
    await waitFor(
      async () =>
        (
          await admin.query<{ pid: number }>(
            "SELECT pg_terminate_backend(pid) AS pid FROM pg_stat_activity WHERE application_name = 'reconciler' AND datname = current_database()",
          )
        ).rowCount! > 0,
      { what: 'the run lock connection' },
    );
    expect(await run).toBe(GrpcStatus.UNAVAILABLE);
  } finally {
    await h.sim_('/_sim/faults', { method: 'DELETE' });
    await admin.end();
  }
  const again = await h.subscription.reconcile({ userId: '' });
  expect(again.usersChecked).toBeGreaterThanOrEqual(1);
  expect(again.failed).toBe(0);
});
