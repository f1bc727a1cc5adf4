import { subscriptionV1 } from '@calsync/proto';
import { createPool, type Pool } from '@calsync/service-kit';
import { captureLogger } from '@calsync/service-kit/testing';
import { withUserLock } from '../src/subscriptions/user-lock';
import { createWebhookRepository } from '../src/webhooks/webhook-repository';
import {
  backfillRequests,
  bookAndReceive,
  disableAtSimulator,
  hookIdOf,
  refusalOf,
  simSubscriptions,
  startHarness,
  type Harness,
  type SimUser,
} from './harness';

// A run over every user reads each page of users at once: the users Calendly shows exactly as
// recorded are confirmed together, the others repaired one at a time under their lock. Its own
// database, so the run sees only the users made here.
let h: Harness;
let pool: Pool;

beforeAll(async () => {
  h = await startHarness('reconcile_page');
  pool = createPool({ url: h.database.url, schema: 'subscription', log: captureLogger('test').log });
});

afterAll(async () => {
  await pool?.end();
  await h?.stop();
});

async function connectAndEnsure(userId: string) {
  const user = await h.connectWithToken(userId);
  const { webhook } = await h.subscription.ensureUserWebhook({ userId });
  return { user, webhook: webhook! };
}

const calendlyRequestsOf = async (user: SimUser) =>
  ((await h.sim_(`/_sim/api_requests?user=${encodeURIComponent(user.uri)}`)) as { requests: number }).requests;

it('confirms healthy users with one Calendly request each, repairs the rest, and touches no one else', async () => {
  const healthy = await Promise.all(['page-a', 'page-b', 'page-c'].map(connectAndEnsure));
  const disabled = await connectAndEnsure('page-disabled');
  const missing = await connectAndEnsure('page-missing');
  const orphaned = await connectAndEnsure('page-orphaned');
  const gone = await connectAndEnsure('page-gone');

  // A healthy hook's old error is cleared by the confirmation.
  await createWebhookRepository(pool).update(healthy[0]!.webhook.hookId, { lastError: 'an old failure' });
  await disableAtSimulator(h, disabled.user);
  await h.sim_(`/webhook_subscriptions/${missing.webhook.calendlySubscriptionUri.split('/').pop()}`, {
    method: 'DELETE',
    token: missing.user.personal_access_token,
  });
  await h.sim_('/webhook_subscriptions', {
    token: orphaned.user.personal_access_token,
    body: {
      url: `${h.receiver.url}/webhooks/calendly/${'Orphan_'.padEnd(32, 'x')}`,
      events: ['invitee.created'],
      organization: orphaned.user.organization,
      scope: 'user',
      user: orphaned.user.uri,
    },
  });
  await h.identity.disconnect({ userId: 'page-gone' });
  const requestsBefore = await Promise.all(healthy.map(({ user }) => calendlyRequestsOf(user)));
  const healthyAtCalendly = await Promise.all(healthy.map(({ user }) => simSubscriptions(h, user)));

  const summary = await h.subscription.reconcile({ userId: '' });
  expect(summary).toMatchObject({
    usersChecked: 7,
    healthy: 4,
    recreated: 2,
    usersDisconnected: 1,
    orphansDeleted: 1,
    failed: 0,
  });

  // The healthy: one list each, their hook verified just now and without error, nothing else changed.
  const requestsAfter = await Promise.all(healthy.map(({ user }) => calendlyRequestsOf(user)));
  expect(requestsAfter.map((after, i) => after - requestsBefore[i]!)).toEqual([1, 1, 1]);
  for (const { webhook } of healthy) {
    const [row] = (await h.subscription.listUserWebhooks({ userId: webhook.userId })).webhooks;
    expect(row).toMatchObject({ hookId: webhook.hookId, lastError: '' });
    expect(row!.lastVerifiedAt!.getTime()).toBeGreaterThan(webhook.lastVerifiedAt!.getTime());
  }
  expect(await Promise.all(healthy.map(({ user }) => simSubscriptions(h, user)))).toEqual(healthyAtCalendly);

  // The disabled and the deleted one are replaced, the disabled one with a backfill for its gap.
  for (const { user, webhook } of [disabled, missing]) {
    const { webhooks } = await h.subscription.listUserWebhooks({ userId: webhook.userId });
    expect(webhooks).toHaveLength(1);
    expect(webhooks[0]!.hookId).not.toBe(webhook.hookId);
    expect((await simSubscriptions(h, user)).map((s) => [hookIdOf(s.callback_url), s.state])).toEqual([
      [webhooks[0]!.hookId, 'active'],
    ]);
    expect(await bookAndReceive(h, user, webhooks[0]!.hookId)).toMatchObject({ outcome: 'ok' });
  }
  const replacement = (await h.subscription.listUserWebhooks({ userId: 'page-disabled' })).webhooks[0]!;
  expect((await backfillRequests(h)).map((request) => request.msgId)).toContain(`backfill:${replacement.hookId}`);

  // The orphan is deleted, the user's own hook kept.
  expect((await simSubscriptions(h, orphaned.user)).map((s) => s.callback_url)).toEqual([orphaned.webhook.callbackUrl]);
  // The disconnected user's hooks are forgotten.
  expect((await h.subscription.listUserWebhooks({ userId: 'page-gone' })).webhooks).toEqual([]);
  expect(await refusalOf(h, gone.webhook.hookId)).toBe('VERIFY_FAILURE_HOOK_NOT_FOUND');

  // A second run finds every connected user healthy (the disconnected one's leftover stays in the
  // list), without waiting for the lock of a healthy user that an Ensure or Remove would hold.
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  let locked!: () => void;
  const holding = new Promise<void>((resolve) => (locked = resolve));
  const holder = withUserLock(pool, 'page-a', async () => {
    locked();
    await held;
  });
  await holding;
  const second = await h.subscription.reconcile({ userId: '' }).finally(release);
  await holder;
  expect(second).toMatchObject({
    usersChecked: 7,
    healthy: 6,
    usersDisconnected: 1,
    failed: 0,
  });
});

it('confirms no hook that changed after it was checked: one being removed, gone, or waiting for a backfill', async () => {
  const repository = createWebhookRepository(pool);
  const [removing, removed, waiting, plain] = await Promise.all(
    ['confirm-removing', 'confirm-removed', 'confirm-waiting', 'confirm-plain'].map(connectAndEnsure),
  );
  await repository.markUserRemoving('confirm-removing');
  await repository.delete([removed!.webhook.hookId]);
  await repository.update(waiting!.webhook.hookId, { backfillFrom: new Date(), lastError: 'kept' });
  const at = new Date(Date.now() + 60_000);

  const written = await repository.confirmVerified(
    [removing!, removed!, waiting!, plain!].map(({ webhook }) => ({
      hookId: webhook.hookId,
      calendlySubscriptionUri: webhook.calendlySubscriptionUri,
    })),
    at,
  );
  expect([...written]).toEqual([plain!.webhook.hookId]);
  expect(await repository.findByHookId(removing!.webhook.hookId)).toMatchObject({ state: 'removing' });
  expect(await repository.findByHookId(removed!.webhook.hookId)).toBeUndefined();
  expect(await repository.findByHookId(waiting!.webhook.hookId)).toMatchObject({ lastError: 'kept' });
  expect(await repository.findByHookId(plain!.webhook.hookId)).toMatchObject({ lastVerifiedAt: at, lastError: null });
});

it('keeps every hook when identity cannot be reached for a whole page, and recovers on the next run', async () => {
  const users = await Promise.all(['outage-a', 'outage-b', 'outage-c'].map(connectAndEnsure));
  const atCalendly = await Promise.all(users.map(({ user }) => simSubscriptions(h, user)));
  // A replica on the same database whose identity address answers nothing.
  const cut = await h.startReplica({ IDENTITY_ADDR: '127.0.0.1:1' });

  const summary = await cut.client.reconcile({ userId: '' });
  expect(summary.usersChecked).toBeGreaterThanOrEqual(users.length);
  expect(summary).toMatchObject({
    healthy: 0,
    recreated: 0,
    usersDisconnected: 0,
    orphansDeleted: 0,
    failed: summary.usersChecked,
  });
  // Nothing was removed or replaced, at Calendly or here; each hook says why it was not checked.
  expect(await Promise.all(users.map(({ user }) => simSubscriptions(h, user)))).toEqual(atCalendly);
  for (const { user, webhook } of users) {
    const { webhooks } = await h.subscription.listUserWebhooks({ userId: webhook.userId });
    expect(webhooks).toEqual([
      expect.objectContaining({
        hookId: webhook.hookId,
        state: subscriptionV1.WebhookState.WEBHOOK_STATE_ACTIVE,
        lastError: expect.stringMatching(/identity/),
      }),
    ]);
    // And its deliveries are still verified and routed.
    expect(await bookAndReceive(h, user, webhook.hookId)).toMatchObject({ outcome: 'ok' });
  }

  // With identity reachable again, the next run finds them healthy and clears the error.
  await h.subscription.reconcile({ userId: '' });
  for (const { webhook } of users) {
    const { webhooks } = await h.subscription.listUserWebhooks({ userId: webhook.userId });
    expect(webhooks).toEqual([
      expect.objectContaining({
        hookId: webhook.hookId,
        state: subscriptionV1.WebhookState.WEBHOOK_STATE_ACTIVE,
        lastError: '',
      }),
    ]);
  }
});
