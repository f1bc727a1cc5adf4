import { subscriptionV1 } from '@calsync/proto';
import { channelCredentials, grpcIdentities, GrpcStatus, reasonOf } from '@calsync/service-kit';
import { callWithoutCertificate, clientAs, reflectedServices, testGrpcSecurity } from '@calsync/service-kit/testing';
import { Client } from 'pg';
import { signatureHeaderFor } from '../src/verify/signature';
import { signingKeyContext } from '../src/webhooks/hook-loader';
import { subscriptionCallers } from '../src/grpc/subscription-service';
import {
  book as bookAt,
  waitFor,
  hookIdOf,
  startHarness,
  testSealer,
  type Harness,
  type Received,
  type SimUser,
} from './harness';

let h: Harness;
let alice: SimUser;
let bob: SimUser;
let aliceHook: string;
let bobHook: string;

const book = (user: SimUser, invitee?: string) => bookAt(h, user, invitee);

/** The delivery of this booking to this hook (retries of earlier refused ones arrive too). */
async function nextDelivery(hookId: string, booking: { invitee: { uri: string } }): Promise<Received> {
  return waitFor(() =>
    h.receiver.received.find((entry) => entry.hookId === hookId && entry.body.includes(booking.invitee.uri)),
  );
}

async function refusal(request: { hookId: string; signatureHeader: string; rawBody: Buffer }) {
  try {
    await h.subscription.verifyAndResolveUser(request);
  } catch (error) {
    return { code: (error as { code: number }).code, reason: reasonOf(error) };
  }
  throw new Error('the delivery was accepted');
}

beforeAll(async () => {
  h = await startHarness('verify');
  alice = await h.connectWithToken('user-alice');
  bob = await h.connectWithToken('user-bob');
  aliceHook = (await h.subscription.ensureUserWebhook({ userId: 'user-alice' })).webhook!.hookId;
  bobHook = (await h.subscription.ensureUserWebhook({ userId: 'user-bob' })).webhook!.hookId;
});

afterAll(() => h?.stop());

describe('who may call', () => {
  it('verifies deliveries only for the gateway: other services are refused, a stranger unauthenticated', async () => {
    const booking = await book(alice);
    const delivery = await nextDelivery(aliceHook, booking);
    const request = { hookId: aliceHook, signatureHeader: delivery.signature, rawBody: delivery.body };
    const address = `127.0.0.1:${h.app.ports.grpc}`;
    for (const other of [grpcIdentities.meetings, grpcIdentities.identity, grpcIdentities.operator]) {
      const client = await clientAs(other, subscriptionV1.SubscriptionServiceService, address);
      await expect(client.verifyAndResolveUser(request)).rejects.toMatchObject({ code: GrpcStatus.PERMISSION_DENIED });
      client.close();
    }
    const stranger = await callWithoutCertificate(
      subscriptionV1.SubscriptionServiceService,
      address,
      'verifyAndResolveUser',
      request,
    );
    expect(stranger.code).toBe(GrpcStatus.UNAUTHENTICATED);
    await expect(h.subscription.verifyAndResolveUser(request)).resolves.toMatchObject({ userId: 'user-alice' });
  });

  it('lets exactly the callers of VerifyAndResolveUser open the VerifyDeliveries stream', async () => {
    expect(subscriptionCallers.verifyDeliveries).toEqual(subscriptionCallers.verifyAndResolveUser);
    const booking = await book(alice);
    const delivery = await nextDelivery(aliceHook, booking);
    const items = [
      {
        id: 1,
        requestId: 'r1',
        traceContext: {},
        delivery: { hookId: aliceHook, signatureHeader: delivery.signature, rawBody: delivery.body },
      },
    ];
    const address = `127.0.0.1:${h.app.ports.grpc}`;
    /** Sends one message on a new stream and resolves its first answer, or the status it ended with. */
    const exchange = (client: Awaited<ReturnType<typeof clientAs<typeof subscriptionV1.SubscriptionServiceService>>>) =>
      new Promise<subscriptionV1.VerifyDeliveriesResponse | { code: number }>((resolve) => {
        const call = client.verifyDeliveries();
        call.on('data', (response: subscriptionV1.VerifyDeliveriesResponse) => {
          resolve(response);
          call.end();
        });
        call.on('error', (error: { code: number }) => resolve({ code: error.code }));
        call.write({ items });
      });
    for (const other of [grpcIdentities.meetings, grpcIdentities.identity, grpcIdentities.operator]) {
      const client = await clientAs(other, subscriptionV1.SubscriptionServiceService, address);
      expect(await exchange(client)).toEqual({ code: GrpcStatus.PERMISSION_DENIED });
      client.close();
    }
    expect(await exchange(h.subscription)).toMatchObject({
      results: [{ id: 1, outcome: { $case: 'verified', value: { userId: 'user-alice' } } }],
    });
  });

  it('lists only its own services and health in reflection', async () => {
    const credentials = channelCredentials(await testGrpcSecurity(), grpcIdentities.subscription);
    expect(await reflectedServices(`127.0.0.1:${h.app.ports.grpc}`, credentials)).toEqual([
      'calsync.subscription.v1.SubscriptionAdminService',
      'calsync.subscription.v1.SubscriptionService',
      'grpc.health.v1.Health',
    ]);
  });
});

it('verifies a real delivery and resolves its user, event and a stable delivery key', async () => {
  const booking = await book(alice);
  const delivery = await nextDelivery(aliceHook, booking);
  expect(delivery).toMatchObject({ outcome: 'ok', userId: 'user-alice', eventType: 'invitee.created' });
  const again = await h.subscription.verifyAndResolveUser({
    hookId: aliceHook,
    signatureHeader: delivery.signature,
    rawBody: delivery.body,
  });
  const twice = await h.subscription.verifyAndResolveUser({
    hookId: aliceHook,
    signatureHeader: delivery.signature,
    rawBody: delivery.body,
  });
  expect(again.deliveryKey).toMatch(/^[0-9a-f]{64}$/);
  expect(twice.deliveryKey).toBe(again.deliveryKey);
  expect(again).toMatchObject({ hookId: aliceHook, calendlyUserUri: alice.uri });
  expect(again.eventCreatedAt).toBeInstanceOf(Date);
});

it("rejects a delivery signed with user A's key sent to user B's hook", async () => {
  const booking = await book(alice, 'mallory');
  const delivery = await nextDelivery(aliceHook, booking);
  expect(await refusal({ hookId: bobHook, signatureHeader: delivery.signature, rawBody: delivery.body })).toEqual({
    code: GrpcStatus.UNAUTHENTICATED,
    reason: 'VERIFY_FAILURE_SIGNATURE_MISMATCH',
  });
});

it('accepts a header with several v1 values when one of them is right', async () => {
  const booking = await book(bob);
  const delivery = await nextDelivery(bobHook, booking);
  const [t, v1] = delivery.signature.split(',');
  const verified = await h.subscription.verifyAndResolveUser({
    hookId: bobHook,
    signatureHeader: `${t},v1=${'0'.repeat(64)},${v1}`,
    rawBody: delivery.body,
  });
  expect(verified.userId).toBe('user-bob');
});

it('rejects a body changed after signing, and a missing or malformed header, each with its reason', async () => {
  const booking = await book(bob, 'tamper');
  const delivery = await nextDelivery(bobHook, booking);
  const tampered = Buffer.from(delivery.body.toString().replace('tamper', 'tamper2'));
  expect(await refusal({ hookId: bobHook, signatureHeader: delivery.signature, rawBody: tampered })).toEqual({
    code: GrpcStatus.UNAUTHENTICATED,
    reason: 'VERIFY_FAILURE_SIGNATURE_MISMATCH',
  });
  expect(await refusal({ hookId: bobHook, signatureHeader: '', rawBody: delivery.body })).toEqual({
    code: GrpcStatus.UNAUTHENTICATED,
    reason: 'VERIFY_FAILURE_SIGNATURE_MISSING',
  });
  expect(
    await refusal({ hookId: bobHook, signatureHeader: delivery.signature.replace(',', ', '), rawBody: delivery.body }),
  ).toEqual({ code: GrpcStatus.UNAUTHENTICATED, reason: 'VERIFY_FAILURE_SIGNATURE_MALFORMED' });
});

it('refuses a genuine signature over a body that is not JSON, not an envelope, or an event not subscribed to', async () => {
  const db = new Client({ connectionString: h.database.url });
  await db.connect();
  const { rows } = await db.query<{ sealed: string }>(
    'SELECT signing_key_sealed AS sealed FROM subscription.webhooks WHERE hook_id = $1',
    [bobHook],
  );
  await db.end();
  const key = testSealer.open(rows[0]!.sealed, signingKeyContext(bobHook));
  const signedRefusal = (body: string) =>
    refusal({
      hookId: bobHook,
      signatureHeader: signatureHeaderFor(key, Math.floor(Date.now() / 1000), body),
      rawBody: Buffer.from(body),
    });
  expect(await signedRefusal('{"event":"invitee.created"}')).toEqual({
    code: GrpcStatus.INVALID_ARGUMENT,
    reason: 'VERIFY_FAILURE_PAYLOAD_MALFORMED',
  });
  expect(await signedRefusal('{"event":')).toEqual({
    code: GrpcStatus.INVALID_ARGUMENT,
    reason: 'VERIFY_FAILURE_PAYLOAD_NOT_JSON',
  });
  const eventType = JSON.stringify({
    event: 'routing_form_submission.created',
    created_at: new Date().toISOString(),
    created_by: bob.uri,
    payload: { uri: 'https://api.calendly.com/routing_form_submissions/R1' },
  });
  expect(await signedRefusal(eventType)).toEqual({
    code: GrpcStatus.PERMISSION_DENIED,
    reason: 'VERIFY_FAILURE_EVENT_NOT_SUBSCRIBED',
  });
});

it('refuses unknown hook ids, well-formed or not, as NOT_FOUND', async () => {
  for (const hookId of ['A'.repeat(32), 'nope', '../../etc']) {
    expect(await refusal({ hookId, signatureHeader: 't=1,v1=' + '0'.repeat(64), rawBody: Buffer.from('{}') })).toEqual({
      code: GrpcStatus.NOT_FOUND,
      reason: 'VERIFY_FAILURE_HOOK_NOT_FOUND',
    });
  }
});

it('rejects deliveries older or newer than the window with distinct reasons', async () => {
  for (const [offset, reason] of [
    [-200_000, 'VERIFY_FAILURE_TIMESTAMP_STALE'],
    [200_000, 'VERIFY_FAILURE_TIMESTAMP_IN_FUTURE'],
  ] as const) {
    await h.sim_('/_sim/faults', { body: { clock_offset_ms: offset } });
    const booking = await book(alice, `clock${offset > 0 ? 'ahead' : 'behind'}`);
    const delivery = await nextDelivery(aliceHook, booking);
    await h.sim_('/_sim/faults', { body: { clock_offset_ms: 0 } });
    expect(delivery.outcome).toBe(reason);
    expect(await refusal({ hookId: aliceHook, signatureHeader: delivery.signature, rawBody: delivery.body })).toEqual({
      code: GrpcStatus.UNAUTHENTICATED,
      reason,
    });
  }
  // Inside the window (170 s behind) is still fine.
  await h.sim_('/_sim/faults', { body: { clock_offset_ms: -170_000 } });
  const booking = await book(alice, 'justintime');
  const delivery = await nextDelivery(aliceHook, booking);
  await h.sim_('/_sim/faults', { body: { clock_offset_ms: 0 } });
  expect(delivery.outcome).toBe('ok');
});

it('every replica refuses a removed hook at once', async () => {
  const carol = await h.connectWithToken('user-carol');
  const carolHook = (await h.subscription.ensureUserWebhook({ userId: 'user-carol' })).webhook!.hookId;
  const replica = await h.startReplica();
  const booking = await book(carol);
  const delivery = await nextDelivery(carolHook, booking);
  const request = { hookId: carolHook, signatureHeader: delivery.signature, rawBody: delivery.body };
  // Both replicas now hold the hook in memory.
  expect((await replica.client.verifyAndResolveUser(request)).userId).toBe('user-carol');
  expect((await h.subscription.verifyAndResolveUser(request)).userId).toBe('user-carol');
  await h.subscription.removeUserWebhooks({ userId: 'user-carol' });
  const refused = await replica.client.verifyAndResolveUser(request).catch((error: unknown) => error);
  expect(reasonOf(refused)).toBe('VERIFY_FAILURE_HOOK_NOT_FOUND');
  expect(await refusal(request)).toEqual({ code: GrpcStatus.NOT_FOUND, reason: 'VERIFY_FAILURE_HOOK_NOT_FOUND' });
  expect(carol.uri).toBeTruthy();
});

it('counts verifications by outcome and cache lookups in its metrics', async () => {
  const metrics = await (await fetch(`http://127.0.0.1:${h.app.ports.metrics}/metrics`)).text();
  expect(metrics).toMatch(/subscription_verifications_total\{[^}]*outcome="ok"[^}]*\} [1-9]/);
  expect(metrics).toMatch(/subscription_verifications_total\{[^}]*outcome="VERIFY_FAILURE_SIGNATURE_MISMATCH"/);
  // By the state of the hook each delivery came to: none when there is no such hook.
  expect(metrics).toMatch(/subscription_verifications_total\{outcome="ok",hook_state="active"[^}]*\} [1-9]/);
  expect(metrics).toMatch(
    /subscription_verifications_total\{outcome="VERIFY_FAILURE_HOOK_NOT_FOUND",hook_state="none"[^}]*\} [1-9]/,
  );
  expect(metrics).toMatch(/subscription_hook_cache_lookups_total\{[^}]*result="hit"[^}]*\} [1-9]/);
  expect(metrics).toMatch(/subscription_hook_cache_hit_ratio\{[^}]*\} 0\.\d+/);
});

it('records when a hook last verified a delivery, without a write per delivery', async () => {
  const [webhook] = (await h.subscription.listUserWebhooks({ userId: 'user-alice' })).webhooks;
  expect(webhook!.hookId).toBe(aliceHook);
  await waitFor(
    async () => (await h.subscription.listUserWebhooks({ userId: 'user-alice' })).webhooks[0]!.lastDeliveryAt,
    { timeoutMs: 12_000 },
  );
  expect(hookIdOf(webhook!.callbackUrl)).toBe(aliceHook);
});

it("records a hook's last refused delivery and why, batched like its deliveries", async () => {
  const before = Date.now();
  const booking = await book(bob, 'forged');
  const delivery = await nextDelivery(bobHook, booking);
  // Bob's genuine delivery, sent to Alice's hook: refused there, and recorded on Alice's hook.
  expect(await refusal({ hookId: aliceHook, signatureHeader: delivery.signature, rawBody: delivery.body })).toEqual({
    code: GrpcStatus.UNAUTHENTICATED,
    reason: 'VERIFY_FAILURE_SIGNATURE_MISMATCH',
  });
  const refusedAt = await waitFor(
    async () => {
      const [hook] = (await h.subscription.listUserWebhooks({ userId: 'user-alice' })).webhooks;
      return hook?.lastRefusedAt && hook.lastRefusedAt.getTime() >= before ? hook : undefined;
    },
    { timeoutMs: 12_000, what: "alice's hook to record the refusal" },
  );
  expect(refusedAt.lastRefusal).toBe('VERIFY_FAILURE_SIGNATURE_MISMATCH');
  expect(refusedAt.lastRefusedAt!.getTime()).toBeLessThanOrEqual(Date.now());
});
