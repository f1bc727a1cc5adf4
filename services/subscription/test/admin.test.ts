import { subscriptionAdminV1, subscriptionV1 } from '@calsync/proto';
import { grpcIdentities, GrpcStatus, type PromiseClient } from '@calsync/service-kit';
import { clientAs, waitFor } from '@calsync/service-kit/testing';
import { bookAndReceive, startHarness, type Harness } from './harness';

const { SyncMode, WebhookState } = subscriptionV1;
const everything = { state: 0, pageSize: 0, cursor: '', userId: '', syncMode: 0 };
let h: Harness;
let admin: PromiseClient<typeof subscriptionAdminV1.SubscriptionAdminServiceService>;
const users = ['adm-ann', 'adm-ben', 'adm-cy'];
const hooks = new Map<string, string>();
// Calendly refuses a free plan a webhook: polled, with the refused attempt as a failed hook.
const polled = 'adm-poll';

beforeAll(async () => {
  h = await startHarness('admin');
  admin = await clientAs(
    grpcIdentities.operator,
    subscriptionAdminV1.SubscriptionAdminServiceService,
    `127.0.0.1:${h.app.ports.grpc}`,
  );
  for (const userId of users) {
    const calendly = await h.connectWithToken(userId);
    const hookId = (await h.subscription.ensureUserWebhook({ userId })).webhook!.hookId;
    hooks.set(userId, hookId);
    if (userId === 'adm-ann') await bookAndReceive(h, calendly, hookId);
  }
  await h.connectWithToken(polled, { plan: 'free' });
  expect(await h.subscription.ensureUserWebhook({ userId: polled })).toMatchObject({
    syncMode: SyncMode.SYNC_MODE_POLLING,
  });
}, 60_000);

afterAll(async () => {
  admin?.close();
  await h?.stop();
});

it('pages through every user’s hooks in a stable order, with state, last delivery and last error', async () => {
  const active = { ...everything, state: WebhookState.WEBHOOK_STATE_ACTIVE, pageSize: 2 };
  const first = await admin.listHooks(active);
  expect(first.webhooks).toHaveLength(2);
  expect(first.nextCursor).not.toBe('');
  const second = await admin.listHooks({ ...active, cursor: first.nextCursor });
  expect(second.webhooks).toHaveLength(1);
  expect(second.nextCursor).toBe('');
  const listed = [...first.webhooks, ...second.webhooks];
  expect(new Set(listed.map((hook) => hook.hookId))).toEqual(new Set(hooks.values()));
  for (const hook of listed) expect(hook).toMatchObject({ state: WebhookState.WEBHOOK_STATE_ACTIVE, lastError: '' });
  const all = await admin.listHooks({ ...everything, pageSize: 10 });
  expect(all.webhooks.map((hook) => hook.userId).sort()).toEqual([...users, polled].sort());
  // The delivery time is written in batches off the request path: it shows once recorded.
  const ann = await waitFor(
    async () =>
      (await admin.listHooks({ ...everything, userId: 'adm-ann' })).webhooks.find((hook) => hook.lastDeliveryAt),
    { timeoutMs: 20_000, intervalMs: 250 },
  );
  expect(ann.lastDeliveryAt!.getTime()).toBeLessThanOrEqual(Date.now());
});

it('filters by state and by user', async () => {
  const active = await admin.listHooks({ ...everything, state: WebhookState.WEBHOOK_STATE_ACTIVE });
  expect(active.webhooks).toHaveLength(3);
  const disabled = await admin.listHooks({ ...everything, state: WebhookState.WEBHOOK_STATE_DISABLED });
  expect(disabled).toEqual({ webhooks: [], nextCursor: '' });
  const ben = await admin.listHooks({ ...everything, userId: 'adm-ben' });
  expect(ben.webhooks.map((hook) => hook.hookId)).toEqual([hooks.get('adm-ben')]);
});

it('lists the hooks of users synced by polling: the attempts Calendly refused, with its reason', async () => {
  const polling = await admin.listHooks({ ...everything, syncMode: SyncMode.SYNC_MODE_POLLING });
  expect(polling.webhooks).toHaveLength(1);
  expect(polling.webhooks[0]).toMatchObject({
    userId: polled,
    state: WebhookState.WEBHOOK_STATE_FAILED,
    lastError: expect.stringMatching(/Calendly refused/),
  });
  const webhook = await admin.listHooks({ ...everything, syncMode: SyncMode.SYNC_MODE_WEBHOOK });
  expect(webhook.webhooks.map((hook) => hook.userId).sort()).toEqual([...users].sort());
  // Filters combine: a polled user has no active hook.
  const activePolled = await admin.listHooks({
    ...everything,
    syncMode: SyncMode.SYNC_MODE_POLLING,
    state: WebhookState.WEBHOOK_STATE_ACTIVE,
  });
  expect(activePolled.webhooks).toEqual([]);
});

it('counts hooks by state and users by sync mode, and exports the same counts to Prometheus without any user label', async () => {
  const { counts, syncModes } = await admin.countHooks({});
  expect(counts).toEqual(
    expect.arrayContaining([
      { state: WebhookState.WEBHOOK_STATE_ACTIVE, count: 3 },
      { state: WebhookState.WEBHOOK_STATE_DISABLED, count: 0 },
      { state: WebhookState.WEBHOOK_STATE_FAILED, count: 1 },
    ]),
  );
  expect(syncModes).toEqual([
    { syncMode: SyncMode.SYNC_MODE_WEBHOOK, count: 3 },
    { syncMode: SyncMode.SYNC_MODE_POLLING, count: 1 },
  ]);
  const metrics = await (await fetch(`http://127.0.0.1:${h.app.ports.metrics}/metrics`)).text();
  expect(metrics).toMatch(/^subscription_webhooks\{state="active",service="subscription"\} 3$/m);
  expect(metrics).toMatch(/^subscription_webhooks\{state="failed",service="subscription"\} 1$/m);
  expect(metrics).toMatch(/^subscription_webhooks\{state="disabled",service="subscription"\} 0$/m);
  expect(metrics).toMatch(/^subscription_synced_users\{mode="webhook",service="subscription"\} 3$/m);
  expect(metrics).toMatch(/^subscription_synced_users\{mode="polling",service="subscription"\} 1$/m);
  for (const userId of [...users, polled]) expect(metrics).not.toContain(userId);
});

it.each([
  ['a negative page size', { pageSize: -1 }, /page_size/],
  ['a page size over 500', { pageSize: 501 }, /page_size/],
  ['a cursor it never returned', { cursor: 'not a cursor!' }, /cursor/],
  ['a state that does not exist', { state: 99 }, /state/],
  ['a sync mode that does not exist', { syncMode: 7 }, /sync_mode/],
  ['an over-long user id', { userId: 'u'.repeat(201) }, /user_id/],
])('refuses %s with INVALID_ARGUMENT naming it', async (_label, bad, message) => {
  await expect(admin.listHooks({ ...everything, ...bad })).rejects.toMatchObject({
    code: GrpcStatus.INVALID_ARGUMENT,
    details: expect.stringMatching(message),
  });
});
