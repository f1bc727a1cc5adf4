// A connection's sync state, end to end: the services as real processes, Calendly (the
// simulator) refusing a user's refresh token or disabling their webhook, and the state the
// gateway shows and subscription's GetSyncState answers over gRPC.
import { approveAuthorize, createSimUser, simControl, type SimUser } from '@calsync/calendly-sim/testing';
import { identityV1, subscriptionV1 } from '@calsync/proto';
import { createGrpcClient, grpcIdentities, type PromiseClient } from '@calsync/service-kit';
import { waitFor } from '@calsync/service-kit/testing';
import { bootSystem, http, type RunningSystem } from './system-harness';

const { SyncStateName, DegradedReason } = subscriptionV1;

interface SyncView {
  state: string;
  reason: string | null;
  detail: string | null;
  mode: string | null;
}
interface ConnectionView {
  connected: boolean;
  state: string | null;
  webhook: { state: string } | null;
  sync: SyncView | null;
}

let system: RunningSystem;
let subscription: PromiseClient<typeof subscriptionV1.SubscriptionServiceService>;
let identity: PromiseClient<typeof identityV1.IdentityServiceService>;

beforeAll(async () => {
  system = await bootSystem({ label: 'e2e_syncstate' });
  // As a platform service (and `calsync`) would: mutual TLS with a certificate from the services' CA.
  subscription = createGrpcClient(subscriptionV1.SubscriptionServiceService, system.addresses.subscription, {
    security: await system.grpcSecurity(grpcIdentities.operator),
    defaultTimeoutMs: 30_000,
  });
  identity = createGrpcClient(identityV1.IdentityServiceService, system.addresses.identity, {
    security: await system.grpcSecurity(grpcIdentities.operator),
  });
}, 120_000);

afterAll(async () => {
  subscription?.close();
  identity?.close();
  await system?.stop();
});

const sim = <T>(method: string, path: string, body?: unknown) => simControl<T>(system.simulator, method, path, body);

const connection = async (userId: string) =>
  (await http<ConnectionView>(`${system.gateway}/api/calendly/connection`, { token: system.jwtFor(userId) })).body;

/** Polls the gateway until the user's sync state satisfies `done`, with a deadline. */
const gatewayUntil = (userId: string, done: (sync: SyncView) => boolean, what: string) =>
  waitFor(
    async () => {
      const { sync } = await connection(userId);
      return sync && done(sync) ? sync : undefined;
    },
    { timeoutMs: 30_000, what: `${userId}: ${what}` },
  );

/** Connects through the real OAuth redirects, as one browser that keeps the connect cookie. */
async function connectWithOAuth(userId: string, calendly: SimUser) {
  const { body, headers } = await http<{ authorizeUrl: string }>(`${system.gateway}/api/calendly/connect`, {
    token: system.jwtFor(userId),
  });
  const cookie = headers
    .getSetCookie()
    .map((line) => line.split(';')[0])
    .join('; ');
  const { location } = await approveAuthorize(body.authorizeUrl, calendly);
  const callback = await fetch(location, { redirect: 'manual', headers: { cookie } });
  expect(callback.headers.get('location')).toContain('calendly=connected');
}

it('shows reauth_required once Calendly refuses the refresh token, in the gateway and over gRPC', async () => {
  const calendly = await createSimUser(system.simulator, { name: 'Rae Revoked' });
  // Short-lived tokens until Rae's are revoked, so that identity must soon refresh hers (a token
  // issued after the setting went back would outlive the test).
  const { accessTokenTtlSeconds } = await sim<{ accessTokenTtlSeconds: number }>('GET', '/_sim/settings');
  await sim('POST', '/_sim/settings', { accessTokenTtlSeconds: 2 });
  try {
    await connectWithOAuth('user-rae', calendly);
    expect((await connection('user-rae')).sync).toMatchObject({ state: expect.stringMatching(/^(importing|live)$/) });
    // Rae removes calsync from her Calendly account: her tokens stop working.
    expect(await sim('POST', `/_sim/users/${calendly.uuid}/revoke_access`)).toEqual({ revoked_grants: 1 });
  } finally {
    await sim('POST', '/_sim/settings', { accessTokenTtlSeconds });
  }
  await waitFor(
    async () => {
      const { connection: found } = await identity.getConnection({ userId: 'user-rae' });
      return (found?.accessTokenExpiresAt?.getTime() ?? Infinity) < Date.now();
    },
    { timeoutMs: 10_000, what: "Rae's access token to expire by identity's clock" },
  );
  // The next call that needs her token refreshes it and is refused: here an operator's reconcile.
  await subscription.reconcile({ userId: 'user-rae' });

  const shown = await gatewayUntil('user-rae', (sync) => sync.state === 'reauth_required', 'reauth_required');
  expect(shown).toMatchObject({ reason: null, detail: expect.stringContaining('connect again') });
  expect((await connection('user-rae')).state).toBe('reauth_required');
  expect((await subscription.getSyncState({ userId: 'user-rae' })).sync).toMatchObject({
    state: SyncStateName.SYNC_STATE_NAME_REAUTH_REQUIRED,
    reason: DegradedReason.DEGRADED_REASON_UNSPECIFIED,
    detail: shown.detail,
  });
});

it('shows degraded webhook_disabled while Calendly has disabled the webhook, and live after reconcile replaces it', async () => {
  const calendly = await createSimUser(system.simulator, { name: 'Dee Disabled' });
  await http(`${system.gateway}/api/calendly/token`, {
    method: 'POST',
    token: system.jwtFor('user-dee'),
    body: { token: calendly.personal_access_token },
  });
  await gatewayUntil('user-dee', (sync) => sync.state === 'live', 'live');

  const { collection } = await sim<{ collection: { uuid: string }[] }>(
    'GET',
    `/_sim/webhook_subscriptions?user=${encodeURIComponent(calendly.uri)}`,
  );
  expect(collection).toHaveLength(1);
  await sim('POST', `/_sim/webhook_subscriptions/${collection[0]!.uuid}/disable`);
  // Calendly refuses the replacement for now (listing still works).
  await sim('POST', '/_sim/faults', {
    api_errors: { status: 503, count: 1_000, path: '/webhook_subscriptions', method: 'POST' },
  });
  try {
    // Calendly sends no notice of a disable: reconcile is what finds it.
    expect(await subscription.reconcile({ userId: 'user-dee' })).toMatchObject({ failed: 1 });
    const degraded = await gatewayUntil('user-dee', (sync) => sync.state === 'degraded', 'degraded');
    expect(degraded).toMatchObject({ reason: 'webhook_disabled', detail: expect.stringMatching(/\S/) });
    expect((await connection('user-dee')).webhook).toMatchObject({ state: 'disabled' });
    expect((await subscription.getSyncState({ userId: 'user-dee' })).sync).toMatchObject({
      state: SyncStateName.SYNC_STATE_NAME_DEGRADED,
      reason: DegradedReason.DEGRADED_REASON_WEBHOOK_DISABLED,
      detail: degraded.detail,
    });
  } finally {
    await sim('DELETE', '/_sim/faults');
  }

  expect(await subscription.reconcile({ userId: 'user-dee' })).toMatchObject({ recreated: 1, failed: 0 });
  const live = await gatewayUntil('user-dee', (sync) => sync.state === 'live', 'live again');
  expect(live).toMatchObject({ reason: null, mode: 'webhook' });
  expect((await connection('user-dee')).webhook).toMatchObject({ state: 'active' });
  expect((await subscription.getSyncState({ userId: 'user-dee' })).sync).toMatchObject({
    state: SyncStateName.SYNC_STATE_NAME_LIVE,
    reason: DegradedReason.DEGRADED_REASON_UNSPECIFIED,
  });
});
