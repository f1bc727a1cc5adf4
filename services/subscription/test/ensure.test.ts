import { eventsV1, subscriptionV1 } from '@calsync/proto';
import { GrpcStatus, reasonOf } from '@calsync/service-kit';
import { Client } from 'pg';
import {
  backfillRequests,
  disableAtSimulator,
  bookAndReceive,
  hookIdOf,
  simSubscriptions,
  startHarness,
  startProxy,
  type Harness,
  type ProxyRule,
  type SimUser,
} from './harness';

const { WebhookState, SigningKeySource, SyncMode } = subscriptionV1;
const { BackfillKind } = eventsV1;
const userEvents = ['invitee.canceled', 'invitee.created', 'invitee_no_show.created', 'invitee_no_show.deleted'];

let h: Harness;

beforeAll(async () => {
  h = await startHarness('ensure');
});

afterAll(() => h?.stop());

/** A delivery to the hook verifies and resolves to the user. */
async function deliveryReaches(user: SimUser, userId: string, hookId: string) {
  expect(await bookAndReceive(h, user, hookId)).toMatchObject({ outcome: 'ok', userId });
}

async function failure(call: Promise<unknown>) {
  const error = await call.then(
    () => undefined,
    (caught: unknown) => caught as { code: number; details: string },
  );
  if (!error) throw new Error('the call succeeded');
  return { code: error.code, details: error.details, reason: reasonOf(error) };
}

it('asks meetings to import a connected account once, and again after a disconnect', async () => {
  const user = await h.connectWithToken('ensure-import');
  await h.subscription.ensureUserWebhook({ userId: 'ensure-import' });
  await h.subscription.ensureUserWebhook({ userId: 'ensure-import' });
  const imports = async () =>
    (await backfillRequests(h)).filter(
      (request) => request.userId === 'ensure-import' && request.msgId.startsWith('import:'),
    );
  const [first, ...more] = await imports();
  expect(more).toEqual([]);
  expect(first).toMatchObject({
    calendlyUserUri: user.uri,
    reason: 'initial import on connect',
    kind: BackfillKind.BACKFILL_KIND_INITIAL_IMPORT,
  });
  // What the connection's sync state asks meetings about.
  const listed = await h.subscription.listUserWebhooks({ userId: 'ensure-import' });
  expect(listed.initialImport).toEqual({ requestId: first!.requestId, requestedAt: expect.any(Date) });
  const days = (date: Date | undefined) => (date!.getTime() - Date.now()) / 86_400_000;
  expect(days(first!.windowStart)).toBeCloseTo(-90, 0);
  expect(days(first!.windowEnd)).toBeCloseTo(730, 0);
  await h.subscription.removeUserWebhooks({ userId: 'ensure-import' });
  await h.subscription.ensureUserWebhook({ userId: 'ensure-import' });
  const all = await imports();
  expect(all).toHaveLength(2);
  expect((await h.subscription.listUserWebhooks({ userId: 'ensure-import' })).initialImport?.requestId).toBe(
    all[1]!.requestId,
  );
  expect((await h.subscription.listUserWebhooks({ userId: 'ensure-pat-nobody' })).initialImport).toBeUndefined();
});

it('creates one user-scoped subscription with a per-user callback and a key of its own', async () => {
  const user = await h.connectWithToken('ensure-pat');
  const { webhook, created } = await h.subscription.ensureUserWebhook({ userId: 'ensure-pat' });
  expect(created).toBe(true);
  expect(webhook).toMatchObject({
    userId: 'ensure-pat',
    calendlyUserUri: user.uri,
    calendlyOrganizationUri: user.organization,
    state: WebhookState.WEBHOOK_STATE_ACTIVE,
    signingKeySource: SigningKeySource.SIGNING_KEY_SOURCE_SUBSCRIPTION,
    callbackUrl: `${h.receiver.url}/webhooks/calendly/${webhook!.hookId}`,
  });
  expect(webhook!.hookId).toMatch(/^[A-Za-z0-9_-]+$/);
  expect(Buffer.from(webhook!.hookId, 'base64url').length).toBeGreaterThanOrEqual(16);
  const [atCalendly, ...more] = await simSubscriptions(h, user);
  expect(more).toEqual([]);
  expect(atCalendly).toMatchObject({
    uri: webhook!.calendlySubscriptionUri,
    callback_url: webhook!.callbackUrl,
    scope: 'user',
    state: 'active',
    signing_key_source: 'supplied',
  });
  expect([...atCalendly!.events].sort()).toEqual(userEvents);
  await deliveryReaches(user, 'ensure-pat', webhook!.hookId);
});

it('keeps signing keys sealed at rest', async () => {
  const db = new Client({ connectionString: h.database.url });
  await db.connect();
  try {
    const { rows } = await db.query<{ signing_key_sealed: string }>(
      "SELECT signing_key_sealed FROM subscription.webhooks WHERE signing_key_source = 'subscription'",
    );
    expect(rows.length).toBeGreaterThan(0);
    for (const row of rows) expect(row.signing_key_sealed).toMatch(/^cs1:k1:/);
  } finally {
    await db.end();
  }
});

it('reports the user as synced by their webhook from the first Ensure, and as not synced once removed', async () => {
  await h.connectWithToken('ensure-mode');
  expect(await h.subscription.listUserWebhooks({ userId: 'ensure-mode' })).toMatchObject({
    syncMode: SyncMode.SYNC_MODE_UNSPECIFIED,
  });
  const ensured = await h.subscription.ensureUserWebhook({ userId: 'ensure-mode' });
  expect(ensured).toMatchObject({ syncMode: SyncMode.SYNC_MODE_WEBHOOK, syncModeReason: '' });
  const listed = await h.subscription.listUserWebhooks({ userId: 'ensure-mode' });
  expect(listed).toMatchObject({ syncMode: SyncMode.SYNC_MODE_WEBHOOK, syncModeReason: '' });
  expect(listed.syncModeSince).toEqual(ensured.syncModeSince);
  await h.subscription.removeUserWebhooks({ userId: 'ensure-mode' });
  expect(await h.subscription.listUserWebhooks({ userId: 'ensure-mode' })).toMatchObject({
    syncMode: SyncMode.SYNC_MODE_UNSPECIFIED,
    syncModeReason: '',
  });
});

it('is idempotent: twice, or five times at once, leaves one subscription', async () => {
  const user = await h.connectWithToken('ensure-twice');
  const first = await h.subscription.ensureUserWebhook({ userId: 'ensure-twice' });
  const second = await h.subscription.ensureUserWebhook({ userId: 'ensure-twice' });
  expect(second.created).toBe(false);
  expect(second.webhook!.hookId).toBe(first.webhook!.hookId);
  expect(await simSubscriptions(h, user)).toHaveLength(1);

  const racer = await h.connectWithToken('ensure-race');
  const replica = await h.startReplica();
  const answers = await Promise.all(
    [h.subscription, replica.client, h.subscription, replica.client, h.subscription].map((client) =>
      client.ensureUserWebhook({ userId: 'ensure-race' }),
    ),
  );
  expect(new Set(answers.map((answer) => answer.webhook!.hookId)).size).toBe(1);
  expect(answers.filter((answer) => answer.created)).toHaveLength(1);
  expect(await simSubscriptions(h, racer)).toHaveLength(1);
  expect((await h.subscription.listUserWebhooks({ userId: 'ensure-race' })).webhooks).toHaveLength(1);
});

it("answers a free plan's 403 by polling the user, with Calendly's message as the reason, and records it", async () => {
  const user = await h.connectWithToken('ensure-free', { plan: 'free' });
  for (let attempt = 0; attempt < 2; attempt++) {
    const answer = await h.subscription.ensureUserWebhook({ userId: 'ensure-free' });
    expect(answer).toMatchObject({
      syncMode: SyncMode.SYNC_MODE_POLLING,
      syncModeReason: 'webhook_not_allowed: Please upgrade your Calendly account to Standard',
      created: false,
    });
    expect(answer.webhook).toBeUndefined();
  }
  const { webhooks } = await h.subscription.listUserWebhooks({ userId: 'ensure-free' });
  expect(webhooks).toHaveLength(1);
  expect(webhooks[0]).toMatchObject({ state: WebhookState.WEBHOOK_STATE_FAILED });
  expect(webhooks[0]!.lastError).toContain('Please upgrade');
  expect(await simSubscriptions(h, user)).toEqual([]);
});

it('answers NOT_FOUND for a user without a Calendly connection, and INVALID_ARGUMENT without a user', async () => {
  expect((await failure(h.subscription.ensureUserWebhook({ userId: 'never-connected' }))).code).toBe(
    GrpcStatus.NOT_FOUND,
  );
  expect((await failure(h.subscription.ensureUserWebhook({ userId: '' }))).code).toBe(GrpcStatus.INVALID_ARGUMENT);
  expect((await h.subscription.listUserWebhooks({ userId: 'never-connected' })).webhooks).toEqual([]);
});

describe('when the answer to a create is lost', () => {
  let rule: ProxyRule = () => 'forward';
  let proxy: { url: string; close(): Promise<void> };
  let client: Harness['subscription'];

  beforeAll(async () => {
    proxy = await startProxy(h.sim.url, (request) => rule(request));
    ({ client } = await h.startReplica({ CALENDLY_API_URL: proxy.url }));
  });
  afterAll(() => proxy.close());

  const onceOnCreate = (decision: ReturnType<ProxyRule>): ProxyRule => {
    let used = false;
    return ({ method, path }) => {
      if (used || method !== 'POST' || path !== '/webhook_subscriptions') return 'forward';
      used = true;
      return decision;
    };
  };

  it('polls a user whom Calendly refuses even the list of webhooks (undocumented, so handled)', async () => {
    const user = await h.connectWithToken('ensure-no-list');
    rule = ({ path }) => (path === '/webhook_subscriptions' ? 'forbid' : 'forward');
    const answer = await client.ensureUserWebhook({ userId: 'ensure-no-list' });
    rule = () => 'forward';
    expect(answer).toMatchObject({
      syncMode: SyncMode.SYNC_MODE_POLLING,
      syncModeReason: 'webhook_not_allowed: You do not have permission to access this resource.',
    });
    expect(answer.webhook).toBeUndefined();
    expect(await simSubscriptions(h, user)).toEqual([]);
    // Once Calendly answers, the next Ensure makes the webhook.
    expect(await client.ensureUserWebhook({ userId: 'ensure-no-list' })).toMatchObject({
      created: true,
      syncMode: SyncMode.SYNC_MODE_WEBHOOK,
    });
  });

  it("adopts the subscription Calendly made (the retry's 409) instead of making a second", async () => {
    const user = await h.connectWithToken('ensure-lost');
    let lost: string | undefined;
    rule = onceOnCreate(async (answer) => {
      lost = (answer as { resource: { callback_url: string } }).resource.callback_url;
    });
    const { webhook, created } = await client.ensureUserWebhook({ userId: 'ensure-lost' });
    rule = () => 'forward';
    expect(created).toBe(true);
    expect(webhook!.callbackUrl).toBe(lost);
    const subscriptions = await simSubscriptions(h, user);
    expect(subscriptions).toHaveLength(1);
    expect(subscriptions[0]).toMatchObject({ callback_url: lost, state: 'active' });
    expect(webhook!.calendlySubscriptionUri).toBe(subscriptions[0]!.uri);
    await deliveryReaches(user, 'ensure-lost', webhook!.hookId);
  });

  it('replaces a conflicting subscription that is not working, leaving exactly one that is', async () => {
    const user = await h.connectWithToken('ensure-conflict');
    let lost: string | undefined;
    let used = false;
    rule = ({ method, path }) => {
      if (used || method !== 'POST' || path !== '/webhook_subscriptions') return 'forward';
      used = true;
      // The create lands, Calendly disables it, and its answer never arrives.
      return async (answer) => {
        const { resource } = answer as { resource: { uri: string; callback_url: string } };
        lost = resource.callback_url;
        await h.sim_(`/_sim/webhook_subscriptions/${resource.uri.split('/').pop()}/disable`, {
          method: 'POST',
          body: {},
        });
      };
    };
    const { webhook } = await client.ensureUserWebhook({ userId: 'ensure-conflict' });
    rule = () => 'forward';
    expect(lost).toBeDefined();
    expect(webhook!.callbackUrl).not.toBe(lost);
    const subscriptions = await simSubscriptions(h, user);
    expect(subscriptions).toHaveLength(1);
    expect(subscriptions[0]).toMatchObject({ callback_url: webhook!.callbackUrl, state: 'active' });
    await deliveryReaches(user, 'ensure-conflict', webhook!.hookId);
  });

  it('keeps a disabled hook until its replacement exists, then replaces it and asks for a backfill', async () => {
    const user = await h.connectWithToken('ensure-keep');
    const original = (await client.ensureUserWebhook({ userId: 'ensure-keep' })).webhook!;
    await disableAtSimulator(h, user);

    rule = ({ method, path }) => (method === 'POST' && path === '/webhook_subscriptions' ? 'fail' : 'forward');
    const refused = await failure(client.ensureUserWebhook({ userId: 'ensure-keep' }));
    expect(refused.code).toBe(GrpcStatus.UNAVAILABLE);
    const kept = (await client.listUserWebhooks({ userId: 'ensure-keep' })).webhooks.find(
      (webhook) => webhook.hookId === original.hookId,
    );
    expect(kept).toMatchObject({ state: WebhookState.WEBHOOK_STATE_DISABLED });
    expect(kept!.lastError).not.toBe('');

    rule = () => 'forward';
    const { webhook, created } = await client.ensureUserWebhook({ userId: 'ensure-keep' });
    expect(created).toBe(true);
    expect(webhook!.hookId).not.toBe(original.hookId);
    expect((await client.listUserWebhooks({ userId: 'ensure-keep' })).webhooks.map((w) => w.hookId)).toEqual([
      webhook!.hookId,
    ]);
    const subscriptions = await simSubscriptions(h, user);
    expect(subscriptions.map((s) => [hookIdOf(s.callback_url), s.state])).toEqual([[webhook!.hookId, 'active']]);
    const backfill = (await backfillRequests(h)).find(
      (request) => request.userId === 'ensure-keep' && request.msgId.startsWith('backfill:'),
    );
    expect(backfill).toMatchObject({ calendlyUserUri: user.uri, msgId: `backfill:${webhook!.hookId}` });
    expect(backfill!.windowStart!.getTime()).toBeLessThanOrEqual(original.createdAt!.getTime());
    expect(backfill!.windowEnd!.getTime()).toBeGreaterThan(Date.now());
  });
});
