import { subscriptionAdminV1, subscriptionV1 } from '@calsync/proto';
import { grpcIdentities, GrpcStatus, type PromiseClient } from '@calsync/service-kit';
import { clientAs, waitFor } from '@calsync/service-kit/testing';
import { bookAndReceive, startHarness, type Harness } from './harness';

const { WebhookState } = subscriptionV1;
let h: Harness;
let admin: PromiseClient<typeof subscriptionAdminV1.SubscriptionAdminServiceService>;
const users = ['adm-ann', 'adm-ben', 'adm-cy'];
const hooks = new Map<string, string>();

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
}, 60_000);

afterAll(async () => {
  admin?.close();
  await h?.stop();
});

it('pages through every user’s hooks in a stable order, with state, last delivery and last error', async () => {
  const first = await admin.listHooks({ state: 0, pageSize: 2, cursor: '', userId: '' });
  expect(first.webhooks).toHaveLength(2);
  expect(first.nextCursor).not.toBe('');
  const second = await admin.listHooks({ state: 0, pageSize: 2, cursor: first.nextCursor, userId: '' });
  expect(second.webhooks).toHaveLength(1);
  expect(second.nextCursor).toBe('');
  const listed = [...first.webhooks, ...second.webhooks];
  expect(new Set(listed.map((hook) => hook.hookId))).toEqual(new Set(hooks.values()));
  for (const hook of listed) expect(hook).toMatchObject({ state: WebhookState.WEBHOOK_STATE_ACTIVE, lastError: '' });
  // The delivery time is written in batches off the request path: it shows once recorded.
  const ann = await waitFor(
    async () =>
      (await admin.listHooks({ state: 0, pageSize: 0, cursor: '', userId: 'adm-ann' })).webhooks.find(
        (hook) => hook.lastDeliveryAt,
      ),
    { timeoutMs: 20_000, intervalMs: 250 },
  );
  expect(ann.lastDeliveryAt!.getTime()).toBeLessThanOrEqual(Date.now());
});

it('filters by state and by user', async () => {
  const active = await admin.listHooks({
    state: WebhookState.WEBHOOK_STATE_ACTIVE,
    pageSize: 0,
    cursor: '',
    userId: '',
  });
  expect(active.webhooks).toHaveLength(3);
  const failed = await admin.listHooks({
    state: WebhookState.WEBHOOK_STATE_FAILED,
    pageSize: 0,
    cursor: '',
    userId: '',
  });
  expect(failed).toEqual({ webhooks: [], nextCursor: '' });
  const ben = await admin.listHooks({ state: 0, pageSize: 0, cursor: '', userId: 'adm-ben' });
  expect(ben.webhooks.map((hook) => hook.hookId)).toEqual([hooks.get('adm-ben')]);
});

it('counts hooks by state, and exports the same counts to Prometheus without any user label', async () => {
  const { counts } = await admin.countHooks({});
  expect(counts).toEqual(
    expect.arrayContaining([
      { state: WebhookState.WEBHOOK_STATE_ACTIVE, count: 3 },
      { state: WebhookState.WEBHOOK_STATE_DISABLED, count: 0 },
      { state: WebhookState.WEBHOOK_STATE_FAILED, count: 0 },
    ]),
  );
  const metrics = await (await fetch(`http://127.0.0.1:${h.app.ports.metrics}/metrics`)).text();
  expect(metrics).toMatch(/^subscription_webhooks\{state="active",service="subscription"\} 3$/m);
  expect(metrics).toMatch(/^subscription_webhooks\{state="failed",service="subscription"\} 0$/m);
  for (const userId of users) expect(metrics).not.toContain(userId);
});

it.each([
  ['a negative page size', { pageSize: -1 }, /page_size/],
  ['a page size over 500', { pageSize: 501 }, /page_size/],
  ['a cursor it never returned', { cursor: 'not a cursor!' }, /cursor/],
  ['a state that does not exist', { state: 99 }, /state/],
  ['an over-long user id', { userId: 'u'.repeat(201) }, /user_id/],
])('refuses %s with INVALID_ARGUMENT naming it', async (_label, bad, message) => {
  await expect(admin.listHooks({ state: 0, pageSize: 0, cursor: '', userId: '', ...bad })).rejects.toMatchObject({
    code: GrpcStatus.INVALID_ARGUMENT,
    details: expect.stringMatching(message),
  });
});
