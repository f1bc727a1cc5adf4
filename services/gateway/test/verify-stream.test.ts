import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import { createServer, Socket, type Server } from 'node:net';
import { subscribedEvents } from '@calsync/calendly-client';
import { inviteeCreatedBody } from '@calsync/calendly-client/testing';
import { subscriptionV1, verifyFailureAnswers } from '@calsync/proto';
import {
  createGrpcClient,
  createMetricsRegistry,
  createPool,
  createSealer,
  grpcIdentities,
  type PromiseClient,
} from '@calsync/service-kit';
import {
  captureLogger,
  createTestDatabase,
  testGrpcEnv,
  testGrpcSecurity,
  testNatsUrl,
  testSubjectPrefix,
  waitFor,
  type TestDatabase,
} from '@calsync/service-kit/testing';
import { start as startSubscription, type SubscriptionApp } from '@calsync/subscription';
import { loadSubscriptionConfig } from '@calsync/subscription/dist/config';
import { createWebhookRepository } from '@calsync/subscription/dist/webhooks/webhook-repository';
import { signingKeyContext } from '@calsync/subscription/dist/webhooks/hook-loader';
import { callbackUrlOf, newHookId, newSigningKey } from '@calsync/subscription/dist/webhooks/webhook-secrets';
import { createGatewayMetrics } from '../src/metrics';
import { createSubscriptionVerifier, type VerifyTransport } from '../src/upstream/subscription-verifier';
import { DeliveryRejected, DependencyUnavailable, type DeliveryVerifier } from '../src/webhooks/delivery-intake';
import { localInfra } from './harness';

// The gateway's end of VerifyDeliveries against a real subscription service over mutual TLS on
// loopback, with hooks written straight into its database. A TCP relay between the two lets a
// test hold subscription's answers back or cut the connection mid-flight.

type SubscriptionClient = PromiseClient<typeof subscriptionV1.SubscriptionServiceService>;

interface User {
  userId: string;
  hookId: string;
  signingKey: string;
  calendlyUserUri: string;
}

/** A loopback TCP relay to `target`: can hold back what the server sends, and cut every connection. */
async function startRelay(target: () => number) {
  const sockets = new Set<Socket>();
  let holding = false;
  let stalled = false;
  const held: (() => void)[] = [];
  let heldBytes = 0;
  const server: Server = createServer((client) => {
    const upstream = new Socket();
    upstream.connect(target(), '127.0.0.1');
    sockets.add(client).add(upstream);
    if (stalled) client.pause();
    client.on('data', (chunk) => upstream.write(chunk));
    upstream.on('data', (chunk: Buffer) => {
      if (!holding) return void client.write(chunk);
      heldBytes += chunk.length;
      held.push(() => client.write(chunk));
    });
    const close = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('close', close).on('error', close);
    upstream.on('close', close).on('error', close);
  });
  const port = await new Promise<number>((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)),
  );
  return {
    port,
    hold() {
      holding = true;
      heldBytes = 0;
    },
    heldBytes: () => heldBytes,
    /** Stops reading from the client at all: its writes back up into TCP and HTTP/2 flow control. */
    stall() {
      stalled = true;
      for (const socket of sockets) socket.pause();
    },
    unstall() {
      stalled = false;
      for (const socket of sockets) socket.resume();
    },
    release() {
      holding = false;
      for (const send of held.splice(0)) send();
    },
    cut() {
      held.splice(0);
      holding = false;
      stalled = false;
      for (const socket of sockets) socket.destroy();
      sockets.clear();
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

let database: TestDatabase;
let subscription: SubscriptionApp;
let subscriptionPort: number;
let relay: Awaited<ReturnType<typeof startRelay>>;
let client: SubscriptionClient;
const users: User[] = [];
const sealingKey = randomBytes(32);
const quiet = captureLogger('verify-stream', 'silent').log;

async function startSubscriptionOnPort(port: number) {
  return startSubscription(
    loadSubscriptionConfig({
      ...(await testGrpcEnv(grpcIdentities.subscription)),
      DATABASE_URL: database.url,
      NATS_URL: testNatsUrl(),
      NATS_SUBJECT_PREFIX: testSubjectPrefix('verifystream'),
      SEALING_KEYS: `k1=${sealingKey.toString('base64')}`,
      SEALING_ACTIVE_KEY_ID: 'k1',
      LOG_LEVEL: 'silent',
      GRPC_HOST: '127.0.0.1',
      GRPC_PORT: String(port),
      METRICS_PORT: '0',
      // Nothing on the delivery path calls identity, meetings or Calendly.
      IDENTITY_ADDR: '127.0.0.1:1',
      MEETINGS_ADDR: '127.0.0.1:1',
      CALENDLY_API_URL: 'http://127.0.0.1:1',
      CALENDLY_AUTH_URL: 'http://127.0.0.1:1',
      PUBLIC_BASE_URL: 'http://127.0.0.1:1',
      RECONCILE_INTERVAL_SECONDS: '0',
      SHUTDOWN_TIMEOUT_MS: '20000',
    }),
    { log: quiet },
  );
}

beforeAll(async () => {
  database = await createTestDatabase('verifystream');
  subscriptionPort = await localInfra.freePort();
  subscription = await startSubscriptionOnPort(subscriptionPort);
  const sealer = createSealer({ keys: new Map([['k1', sealingKey]]), activeKeyId: 'k1' });
  const pool = createPool({ url: database.url, schema: 'subscription', log: quiet });
  const rows = [];
  for (let i = 0; i < 4; i += 1) {
    const user = {
      userId: `stream-user-${i}`,
      hookId: newHookId(),
      signingKey: newSigningKey(),
      calendlyUserUri: `https://api.calendly.com/users/STREAM${i}`,
    };
    users.push(user);
    rows.push({
      hookId: user.hookId,
      userId: user.userId,
      calendlyUserUri: user.calendlyUserUri,
      calendlyOrganizationUri: 'https://api.calendly.com/organizations/STREAMORG',
      calendlySubscriptionUri: `https://api.calendly.com/webhook_subscriptions/${randomUUID()}`,
      callbackUrl: callbackUrlOf('http://127.0.0.1:1', user.hookId),
      events: [...subscribedEvents],
      state: 'active' as const,
      signingKeySource: 'subscription' as const,
      signingKeySealed: sealer.seal(user.signingKey, signingKeyContext(user.hookId)),
      lastVerifiedAt: new Date(),
    });
  }
  await createWebhookRepository(pool).insertMany(rows);
  await pool.end();
  relay = await startRelay(() => subscriptionPort);
  client = createGrpcClient(subscriptionV1.SubscriptionServiceService, `127.0.0.1:${relay.port}`, {
    security: await testGrpcSecurity(grpcIdentities.gateway),
  });
});

afterAll(async () => {
  client?.close();
  await relay?.close();
  await subscription?.stop();
  await database?.drop();
});

function verifierOf(
  transport: VerifyTransport,
  options: { timeoutMs?: number; maxItems?: number; maxAgeMs?: number; maxQueued?: number } = {},
) {
  const registry = createMetricsRegistry('gateway');
  const batches: number[] = [];
  const metrics = createGatewayMetrics(registry);
  const verifier = createSubscriptionVerifier({
    client,
    timeoutMs: options.timeoutMs ?? 5_000,
    metrics: {
      ...metrics,
      observeVerifyBatch: (items) => {
        batches.push(items);
        metrics.observeVerifyBatch(items);
      },
    },
    transport,
    log: quiet,
    streamLimits: {
      ...(options.maxItems ? { maxItems: options.maxItems } : {}),
      ...(options.maxAgeMs !== undefined ? { maxAgeMs: options.maxAgeMs } : {}),
      ...(options.maxQueued !== undefined ? { maxQueued: options.maxQueued } : {}),
    },
  });
  return { verifier, batches, registry };
}

function signed(user: User, options: { body?: Buffer; key?: string; at?: number; hookId?: string } = {}) {
  const rawBody =
    options.body ?? inviteeCreatedBody({ uri: user.calendlyUserUri, email: 'host@example.test', name: 'Host' });
  const t = options.at ?? Math.floor(Date.now() / 1000);
  const v1 = createHmac('sha256', options.key ?? user.signingKey)
    .update(`${t}.`)
    .update(rawBody)
    .digest('hex');
  return { hookId: options.hookId ?? user.hookId, signatureHeader: `t=${t},v1=${v1}`, rawBody };
}

/** What the delivery route makes of a verify: the verified user, or the refusal's kind and code. */
async function outcomeOf(verifier: DeliveryVerifier, request: ReturnType<typeof signed>, requestId = randomUUID()) {
  try {
    const verified = await verifier.verify(request, { requestId });
    return { userId: verified.userId, eventType: verified.eventType, deliveryKey: verified.deliveryKey };
  } catch (error) {
    if (error instanceof DeliveryRejected) return { kind: error.kind, code: error.code, message: error.message };
    if (error instanceof DependencyUnavailable) return { unavailable: error.dependency, message: error.message };
    throw error;
  }
}

/** One delivery of every kind the gateway must answer, good and bad, for users[0] and users[1]. */
function everyKindOfDelivery() {
  const [alice, bob] = users as [User, User];
  const now = Math.floor(Date.now() / 1000);
  const otherEvent = Buffer.from(
    JSON.stringify({
      event: 'routing_form_submission.created',
      created_at: new Date().toISOString(),
      created_by: alice.calendlyUserUri,
      payload: { uri: 'https://api.calendly.com/routing_form_submissions/R1' },
    }),
  );
  return {
    genuine: signed(alice),
    genuineBob: signed(bob),
    wrongKey: signed(alice, { key: bob.signingKey }),
    stale: signed(alice, { at: now - 3_600 }),
    future: signed(alice, { at: now + 3_600 }),
    unknownHook: signed(alice, { hookId: newHookId() }),
    // Signed with Bob's key and sent to Bob's hook, but the booking is Alice's.
    otherUser: signed(bob, { body: signed(alice).rawBody }),
    notEnvelope: signed(alice, { body: Buffer.from('{"event":"invitee.created"}') }),
    notJson: signed(alice, { body: Buffer.from('{"event":') }),
    notSubscribed: signed(alice, { body: otherEvent }),
    malformedHeader: { ...signed(alice), signatureHeader: 'v1=nothex' },
    // Over subscription's 1 MiB limit: it goes alone, and is refused as the unary call refuses it.
    oversized: signed(alice, { body: Buffer.alloc(1024 * 1024 + 10, 'a') }),
  };
}

describe('VerifyDeliveries from the gateway', () => {
  it('answers every kind of delivery exactly as VerifyAndResolveUser does', async () => {
    const deliveries = everyKindOfDelivery();
    const unary = verifierOf('unary');
    const stream = verifierOf('stream');
    const expected = Object.fromEntries(
      await Promise.all(
        Object.entries(deliveries).map(async ([name, request]) => [name, await outcomeOf(unary.verifier, request)]),
      ),
    );
    const got = Object.fromEntries(
      await Promise.all(
        Object.entries(deliveries).map(async ([name, request]) => [name, await outcomeOf(stream.verifier, request)]),
      ),
    );
    expect(got).toEqual(expected);
    // The table decided, not a default: every refusal carries its own code.
    expect(expected).toMatchObject({
      genuine: { userId: users[0]!.userId, eventType: 'invitee.created' },
      genuineBob: { userId: users[1]!.userId },
      wrongKey: { kind: 'unauthenticated', code: 'signature_mismatch' },
      stale: { kind: 'unauthenticated', code: 'signature_expired' },
      future: { kind: 'unauthenticated', code: 'signature_from_future' },
      unknownHook: { kind: 'unknown_hook', code: 'unknown_hook' },
      otherUser: { kind: 'forbidden', code: 'payload_not_for_this_hook' },
      notEnvelope: { kind: 'malformed', code: 'malformed_payload' },
      notJson: { kind: 'malformed', code: 'malformed_json' },
      notSubscribed: { kind: 'forbidden', code: 'event_not_subscribed' },
      malformedHeader: { kind: 'unauthenticated', code: 'signature_malformed' },
      oversized: { kind: 'malformed', code: 'malformed_payload' },
    });
    const codes = new Set(Object.values(verifyFailureAnswers).map((answer) => answer.code));
    for (const value of Object.values(expected) as Record<string, string>[]) {
      if ('code' in value) expect(codes).toContain(value.code);
    }
    stream.verifier.close();
    unary.verifier.close();
  });

  it('sends the verifies of one event-loop turn as one message, and each refusal stays its own', async () => {
    const { verifier, batches, registry } = verifierOf('stream');
    const deliveries = everyKindOfDelivery();
    const { oversized: _alone, ...inOneMessage } = deliveries;
    const requests = Array.from({ length: 5 }, () => Object.values(inOneMessage)).flat();
    const outcomes = await Promise.all(requests.map((request) => outcomeOf(verifier, request)));
    expect(batches).toEqual([requests.length]);
    const kinds = outcomes.map((outcome) => ('code' in outcome ? outcome.code : 'userId' in outcome ? 'ok' : 'other'));
    const perRound = Object.keys(inOneMessage).length;
    for (let round = 0; round < 5; round += 1) {
      expect(kinds.slice(round * perRound, (round + 1) * perRound)).toEqual(kinds.slice(0, perRound));
    }
    expect(kinds.filter((kind) => kind === 'ok')).toHaveLength(10);
    // The verify timer still counts deliveries, one per delivery.
    const timed = (await registry.getSingleMetric('gateway_verify_duration_seconds')!.get()).values.filter((v) =>
      (v as { metricName?: string }).metricName?.endsWith('_count'),
    );
    expect(timed.reduce((sum, v) => sum + v.value, 0)).toBe(requests.length);
    verifier.close();
  });

  it('splits a large turn into messages of at most maxItems', async () => {
    const { verifier, batches } = verifierOf('stream', { maxItems: 8 });
    const outcomes = await Promise.all(
      Array.from({ length: 20 }, (_, i) => outcomeOf(verifier, signed(users[i % users.length]!))),
    );
    expect(outcomes.every((outcome) => 'userId' in outcome)).toBe(true);
    expect(batches).toEqual([8, 8, 4]);
    verifier.close();
  });

  it('keeps bodies of one message under the byte limit', async () => {
    const { verifier, batches } = verifierOf('stream');
    // Five bodies of ~300 KB: 1 MiB per message holds three.
    const padding = 'x'.repeat(300 * 1024);
    const big = (user: User) => {
      const body = JSON.parse(
        inviteeCreatedBody({ uri: user.calendlyUserUri, email: 'h@example.test', name: 'Host' }).toString(),
      );
      body.payload.questions_and_answers = [{ question: 'q', answer: padding, position: 0 }];
      return signed(user, { body: Buffer.from(JSON.stringify(body)) });
    };
    const outcomes = await Promise.all(users.concat(users[0]!).map((user) => outcomeOf(verifier, big(user))));
    expect(outcomes.every((outcome) => 'userId' in outcome)).toBe(true);
    expect(batches).toEqual([3, 2]);
    verifier.close();
  });

  it('replaces an old stream without losing what it carries', async () => {
    // Every message after the first finds its stream too old: it is half-closed and a new one opened.
    const { verifier, batches } = verifierOf('stream', { maxAgeMs: 0 });
    for (let round = 0; round < 3; round += 1) {
      const outcomes = await Promise.all(users.map((user) => outcomeOf(verifier, signed(user))));
      expect(outcomes.every((outcome) => 'userId' in outcome)).toBe(true);
    }
    expect(batches).toEqual([4, 4, 4]);
    verifier.close();
  });

  it('answers 503 for deliveries in flight when the stream breaks, and opens a new stream by itself', async () => {
    const { verifier } = verifierOf('stream');
    expect(await outcomeOf(verifier, signed(users[0]!))).toMatchObject({ userId: users[0]!.userId });
    relay.hold();
    const inFlight = users.map((user) => outcomeOf(verifier, signed(user)));
    // subscription has answered them; the answers are stuck in the relay when the connection goes.
    await waitFor(() => relay.heldBytes() > 0);
    const started = Date.now();
    relay.cut();
    const outcomes = await Promise.all(inFlight);
    expect(Date.now() - started).toBeLessThan(4_000);
    for (const outcome of outcomes) expect(outcome).toMatchObject({ unavailable: 'subscription' });
    // The next delivery needs no one to reconnect anything.
    await waitFor(async () => 'userId' in (await outcomeOf(verifier, signed(users[1]!))), { timeoutMs: 10_000 });
    verifier.close();
  });

  it('answers 503 when subscription goes away mid-flight, and verifies again once it is back', async () => {
    const { verifier } = verifierOf('stream');
    expect(await outcomeOf(verifier, signed(users[0]!))).toMatchObject({ userId: users[0]!.userId });
    relay.hold();
    const inFlight = users.map((user) => outcomeOf(verifier, signed(user)));
    await waitFor(() => relay.heldBytes() > 0);
    // The process is gone with its answers unsent.
    const stopped = subscription.stop();
    relay.cut();
    for (const outcome of await Promise.all(inFlight)) expect(outcome).toMatchObject({ unavailable: 'subscription' });
    await stopped;
    // While it is down, deliveries get 503 at once, as with the unary call.
    expect(await outcomeOf(verifier, signed(users[2]!))).toMatchObject({ unavailable: 'subscription' });
    subscription = await startSubscriptionOnPort(subscriptionPort);
    await waitFor(async () => 'userId' in (await outcomeOf(verifier, signed(users[2]!))), { timeoutMs: 15_000 });
    verifier.close();
  });

  it('lets subscription stop without waiting out its shutdown timeout for an open stream', async () => {
    const { verifier } = verifierOf('stream');
    expect(await outcomeOf(verifier, signed(users[0]!))).toMatchObject({ userId: users[0]!.userId });
    // The stream stays open between deliveries; stopping ends it from subscription's side.
    const stopping = Date.now();
    await subscription.stop();
    expect(Date.now() - stopping).toBeLessThan(5_000);
    subscription = await startSubscriptionOnPort(subscriptionPort);
    await waitFor(async () => 'userId' in (await outcomeOf(verifier, signed(users[3]!))), { timeoutMs: 15_000 });
    verifier.close();
  });

  it('refuses new verifies at once (503) while the stream cannot take more, and recovers', async () => {
    const { verifier } = verifierOf('stream', { timeoutMs: 3_000, maxItems: 1, maxQueued: 4 });
    expect(await outcomeOf(verifier, signed(users[0]!))).toMatchObject({ userId: users[0]!.userId });
    relay.stall();
    const body = Buffer.from(JSON.stringify({ pad: 'x'.repeat(512 * 1024) }));
    // Far more than TCP and HTTP/2 buffer: the stream's writes stop being taken, the queue fills.
    const outcomes = await Promise.all(
      Array.from({ length: 80 }, () => outcomeOf(verifier, signed(users[1]!, { body }))),
    );
    const refusedAtOnce = outcomes.filter((outcome) => String(outcome.message).includes('RESOURCE_EXHAUSTED'));
    expect(refusedAtOnce.length).toBeGreaterThan(0);
    for (const outcome of outcomes) expect(outcome).toMatchObject({ unavailable: 'subscription' });
    relay.cut();
    await waitFor(async () => 'userId' in (await outcomeOf(verifier, signed(users[2]!))), { timeoutMs: 10_000 });
    verifier.close();
  });

  it("keeps each delivery's own deadline on the stream", async () => {
    const { verifier } = verifierOf('stream', { timeoutMs: 400 });
    expect(await outcomeOf(verifier, signed(users[0]!))).toMatchObject({ userId: users[0]!.userId });
    relay.hold();
    const started = Date.now();
    const late = await outcomeOf(verifier, signed(users[1]!));
    const waited = Date.now() - started;
    expect(late).toMatchObject({ unavailable: 'subscription', message: expect.stringContaining('DEADLINE_EXCEEDED') });
    expect(waited).toBeGreaterThanOrEqual(390);
    expect(waited).toBeLessThan(2_000);
    // The answer that arrives after the deadline is dropped; the stream itself is fine.
    relay.release();
    expect(await outcomeOf(verifier, signed(users[1]!))).toMatchObject({ userId: users[1]!.userId });
    verifier.close();
  });
});
