import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { startSimulator, type Simulator, type SimulatorSettings } from '@calsync/calendly-sim';
import { createSimUser, simControl, type SimUser } from '@calsync/calendly-sim/testing';
import { connectWithOAuth, startTestIdentity, type IdentityClient } from '@calsync/identity/testing';
import { start as startMeetings } from '@calsync/meetings';
import { loadMeetingsConfig } from '@calsync/meetings/dist/config';
import { eventsV1, subscriptionV1 } from '@calsync/proto';
import { connect } from 'nats';
import { createSealer, grpcIdentities, listen, natsNames, reasonOf, type PromiseClient } from '@calsync/service-kit';
import {
  captureLogger,
  clientAsAllowedCallers,
  testGrpcEnv,
  testGrpcSecurity,
  createTestDatabase,
  testNatsUrl,
  testSubjectPrefix,
  waitFor,
  type TestDatabase,
} from '@calsync/service-kit/testing';
import { loadSubscriptionConfig } from '../src/config';
import { subscriptionCallers } from '../src/grpc/subscription-service';
import { createIdentityConnections, type Connections } from '../src/upstream/identity-connections';
import { start as startSubscription, type SubscriptionApp } from '../src/main';

export type SubscriptionClient = PromiseClient<typeof subscriptionV1.SubscriptionServiceService>;
export type { IdentityClient, SimUser };

/** One delivery the simulator made to the receiver, and what VerifyAndResolveUser said about it. */
export interface Received {
  hookId: string;
  signature: string;
  body: Buffer;
  /** 'ok' or the VerifyFailure name. */
  outcome: string;
  userId?: string;
  eventType?: string;
}

/**
 * A stand-in for the gateway's webhook route: takes the simulator's deliveries, asks
 * subscription (over gRPC) whether they are genuine, and answers 200 only when they are.
 */
export interface Receiver {
  url: string;
  received: Received[];
  /** Points the receiver at a subscription replica. */
  use(client: SubscriptionClient): void;
  close(): Promise<void>;
}

function closeServer(server: Server): Promise<void> {
  return new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

export async function startReceiver(): Promise<Receiver> {
  const received: Received[] = [];
  let client: SubscriptionClient | undefined;
  const server: Server = createServer((req, res) => {
    void (async () => {
      const body = await readBody(req);
      // The legacy single URL has no hook id: subscription resolves it by created_by.
      const match = /^\/webhooks\/calendly\/([^/?]*)$/.exec(req.url ?? '');
      const hookId = match ? decodeURIComponent(match[1]!) : '';
      const signature = String(req.headers['calendly-webhook-signature'] ?? '');
      // Listed once answered, so a test that finds it also finds the outcome.
      const entry: Received = { hookId, signature, body, outcome: 'unanswered' };
      try {
        const verified = await client!.verifyAndResolveUser({ hookId, signatureHeader: signature, rawBody: body });
        Object.assign(entry, { outcome: 'ok', userId: verified.userId, eventType: verified.eventType });
        received.push(entry);
        res.writeHead(200).end();
      } catch (error) {
        entry.outcome = reasonOf(error) ?? 'error';
        received.push(entry);
        res.writeHead(401).end();
      }
    })();
  });
  const port = await listen(server, 0, '127.0.0.1');
  return {
    url: `http://127.0.0.1:${port}`,
    received,
    use(next) {
      client = next;
    },
    close: () => closeServer(server),
  };
}

const sealingKey = randomBytes(32);
export const sealingKeys = `k1=${sealingKey.toString('base64')}`;
/** The sealer the services of the harness use, for tests that write rows themselves. */
export const testSealer = createSealer({ keys: new Map([['k1', sealingKey]]), activeKeyId: 'k1' });

export interface Harness {
  database: TestDatabase;
  prefix: string;
  identityAddress: string;
  identityConnections(): Promise<Connections>;
  sim: Simulator;
  receiver: Receiver;
  identity: IdentityClient;
  subscription: SubscriptionClient;
  app: SubscriptionApp;
  /** Starts another subscription replica on the same database (other settings may differ). */
  startReplica(env?: Record<string, string>): Promise<{ app: SubscriptionApp; client: SubscriptionClient }>;
  /** A simulated Calendly user connected to identity with a personal access token. */
  connectWithToken(userId: string, options?: { plan?: 'free' | 'standard'; organization?: string }): Promise<SimUser>;
  /** A simulated Calendly user connected to identity through the OAuth flow. */
  connectWithOAuth(
    userId: string,
    options?: { organization?: string; role?: 'owner' | 'admin' | 'user' },
  ): Promise<SimUser>;
  sim_(path: string, init?: { method?: string; body?: unknown; token?: string }): Promise<unknown>;
  stop(): Promise<void>;
}

/** The simulator, a real identity service and a real subscription service, on one test database. */
export async function startHarness(
  label: string,
  options: {
    sim?: Partial<SimulatorSettings>;
    env?: Record<string, string>;
    /** Boots a real meetings service (the import's progress in GetSyncState); without it nothing answers at MEETINGS_ADDR. */
    meetings?: boolean;
  } = {},
): Promise<Harness> {
  const database = await createTestDatabase(label);
  const prefix = testSubjectPrefix(label);
  const { log } = captureLogger(label, 'silent');
  const sim = await startSimulator({
    settings: { retry: { baseMs: 200, factor: 2, windowMs: 60_000 }, ...options.sim },
  });
  const receiver = await startReceiver();
  const stops: (() => Promise<void>)[] = [];
  const clients: { close(): void }[] = [];

  const testIdentity = await startTestIdentity({
    databaseUrl: database.url,
    sim,
    keys: { k1: sealingKey.toString('base64') },
    log,
  });
  stops.push(() => testIdentity.stop());
  const identityAddress = testIdentity.address;

  let meetingsAddress = '127.0.0.1:1';
  if (options.meetings) {
    const meetings = await startMeetings(
      loadMeetingsConfig({
        ...(await testGrpcEnv(grpcIdentities.meetings)),
        DATABASE_URL: database.url,
        NATS_URL: testNatsUrl(),
        NATS_SUBJECT_PREFIX: prefix,
        GRPC_HOST: '127.0.0.1',
        GRPC_PORT: '0',
        METRICS_PORT: '0',
        IDENTITY_ADDR: identityAddress,
        CALENDLY_API_URL: sim.url,
        CALENDLY_AUTH_URL: sim.url,
        LOG_LEVEL: 'silent',
      }),
      { log },
    );
    stops.push(() => meetings.stop());
    meetingsAddress = `127.0.0.1:${meetings.ports.grpc}`;
  }

  const subscriptionTls = await testGrpcEnv(grpcIdentities.subscription);
  const subscriptionEnv = (env: Record<string, string> = {}) => ({
    ...subscriptionTls,
    DATABASE_URL: database.url,
    NATS_URL: testNatsUrl(),
    NATS_SUBJECT_PREFIX: prefix,
    GRPC_HOST: '127.0.0.1',
    GRPC_PORT: '0',
    METRICS_PORT: '0',
    SEALING_KEYS: sealingKeys,
    SEALING_ACTIVE_KEY_ID: 'k1',
    IDENTITY_ADDR: identityAddress,
    MEETINGS_ADDR: meetingsAddress,
    CALENDLY_API_URL: sim.url,
    CALENDLY_AUTH_URL: sim.url,
    PUBLIC_BASE_URL: receiver.url,
    CALENDLY_WEBHOOK_SIGNING_KEY: sim.settings.applicationSigningKey,
    RECONCILE_INTERVAL_SECONDS: '0',
    LOG_LEVEL: 'silent',
    ...options.env,
    ...env,
  });
  const startReplica = async (env?: Record<string, string>) => {
    const app = await startSubscription(loadSubscriptionConfig(subscriptionEnv(env)), { log });
    stops.push(() => app.stop());
    const client = await clientAsAllowedCallers(
      subscriptionV1.SubscriptionServiceService,
      `127.0.0.1:${app.ports.grpc}`,
      subscriptionCallers,
      { defaultTimeoutMs: 20_000 },
    );
    clients.push(client);
    return { app, client };
  };
  const main = await startReplica();
  receiver.use(main.client);
  const identity = testIdentity.client;

  const simCall = async (path: string, init: { method?: string; body?: unknown; token?: string } = {}) => {
    const response = await fetch(`${sim.url}${path}`, {
      method: init.method ?? (init.body === undefined ? 'GET' : 'POST'),
      headers: {
        'content-type': 'application/json',
        ...(init.token ? { authorization: `Bearer ${init.token}` } : {}),
      },
      body: init.body === undefined ? undefined : JSON.stringify(init.body),
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`simulator ${path}: ${response.status} ${text}`);
    return text ? (JSON.parse(text) as unknown) : undefined;
  };
  const createUser = (userId: string, extra: Record<string, unknown>) => createSimUser(sim, { name: userId, ...extra });

  return {
    database,
    prefix,
    identityAddress,
    /** identity's connections as subscription itself reaches them: over gRPC with its certificate. */
    identityConnections: async () =>
      createIdentityConnections({
        address: identityAddress,
        security: await testGrpcSecurity(grpcIdentities.subscription),
      }),
    sim,
    receiver,
    identity,
    subscription: main.client,
    app: main.app,
    startReplica,
    sim_: simCall,
    async connectWithToken(userId, extra = {}) {
      const user = await createUser(userId, extra);
      await identity.connectWithPersonalToken({ userId, token: user.personal_access_token });
      return user;
    },
    async connectWithOAuth(userId, extra = {}) {
      const user = await createUser(userId, extra);
      await connectWithOAuth(identity, userId, user);
      return user;
    },
    async stop() {
      for (const client of clients) client.close();
      for (const stop of stops.reverse()) await stop();
      await receiver.close();
      await sim.stop();
      await database.drop();
    },
  };
}

let slot = 0;

/** Books a meeting with the user at the simulator (which then fires invitee.created to their hooks). */
export async function book(h: Harness, user: SimUser, invitee = 'ivy'): Promise<{ invitee: { uri: string } }> {
  slot += 1;
  const start = new Date(Date.now() + 24 * 3600 * 1000 + slot * 3600 * 1000);
  return (await h.sim_('/_sim/bookings', {
    body: {
      user: user.uri,
      invitee: { name: invitee, email: `${invitee}@example.com` },
      start_time: start.toISOString(),
      end_time: new Date(start.getTime() + 30 * 60 * 1000).toISOString(),
    },
  })) as { invitee: { uri: string } };
}

/** The receiver's entries carrying this booking (matched by invitee: refused deliveries come back as retries). */
export function deliveriesOf(h: Harness, booking: { invitee: { uri: string } }): Received[] {
  return h.receiver.received.filter((entry) => entry.body.includes(booking.invitee.uri));
}

/** Waits until the simulator has no delivery left to make: what a booking sends has been sent. */
export async function simDeliveriesSettled(h: Harness): Promise<void> {
  await waitFor(async () => (await simControl<{ pending: number }>(h.sim, 'GET', '/_sim/deliveries')).pending === 0, {
    what: 'the simulator to finish its deliveries',
  });
}

/** Books a meeting with the user and waits for its delivery to the hook. */
export async function bookAndReceive(h: Harness, user: SimUser, hookId: string, invitee?: string): Promise<Received> {
  const booking = await book(h, user, invitee);
  return waitFor(() => deliveriesOf(h, booking).find((entry) => entry.hookId === hookId));
}

/** The hook id at the end of a callback URL. */
/** Why the service refuses any delivery to this hook (e.g. VERIFY_FAILURE_HOOK_NOT_FOUND once it is removed). */
export async function refusalOf(h: Harness, hookId: string): Promise<string | undefined> {
  const request = { hookId, signatureHeader: 't=1,v1=' + '0'.repeat(64), rawBody: Buffer.from('{}') };
  return reasonOf(await h.subscription.verifyAndResolveUser(request).catch((error: unknown) => error));
}

export const hookIdOf = (callbackUrl: string) => callbackUrl.slice(callbackUrl.lastIndexOf('/') + 1);

/** What a proxy does with one request: pass it on, or answer itself after (or instead of) passing it on. */
export type ProxyRule = (request: {
  method: string;
  path: string;
}) => 'forward' | 'lose-answer' | 'fail' | 'forbid' | ((answer: unknown) => Promise<void>);

/**
 * A network between subscription and the simulator that can lose answers: `lose-answer`
 * forwards the request (Calendly acts on it) and then answers 502, as a dropped connection
 * would; `fail` answers 503 without forwarding; a function is `lose-answer` that first runs it
 * with Calendly's answer. The simulator stays the only Calendly.
 */
export async function startProxy(target: string, rule: ProxyRule): Promise<{ url: string; close(): Promise<void> }> {
  const server = createServer((req, res) => {
    void (async () => {
      const body = await readBody(req);
      const decision = rule({ method: req.method ?? 'GET', path: (req.url ?? '').split('?')[0]! });
      if (decision === 'forbid') {
        res
          .writeHead(403, { 'content-type': 'application/json' })
          .end('{"title":"Permission Denied","message":"You do not have permission to access this resource."}');
        return;
      }
      if (decision === 'fail') {
        res
          .writeHead(503, { 'content-type': 'application/json' })
          .end('{"title":"Service Unavailable","message":"proxy"}');
        return;
      }
      const headers = Object.fromEntries(
        Object.entries(req.headers).filter(([name]) => !['host', 'connection', 'content-length'].includes(name)),
      ) as Record<string, string>;
      const answer = await fetch(`${target}${req.url}`, {
        method: req.method,
        headers,
        body: body.length > 0 ? body : undefined,
      });
      const text = await answer.text();
      if (typeof decision === 'function') await decision(text ? JSON.parse(text) : undefined);
      if (decision !== 'forward') {
        res.writeHead(502, { 'content-type': 'application/json' }).end('{"title":"Bad Gateway","message":"proxy"}');
        return;
      }
      res
        .writeHead(answer.status, { 'content-type': answer.headers.get('content-type') ?? 'application/json' })
        .end(text);
    })();
  });
  const port = await listen(server, 0, '127.0.0.1');
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => closeServer(server),
  };
}

/** A subscription as the simulator's control API shows it. */
export interface SimSubscription {
  uri: string;
  uuid: string;
  callback_url: string;
  state: string;
  scope: string;
  events: string[];
  signing_key_source: string;
}

/** The simulator's view of a user's webhook subscriptions (control API). */
export async function simSubscriptions(h: Harness, user: SimUser): Promise<SimSubscription[]> {
  const answer = (await h.sim_(`/_sim/webhook_subscriptions?user=${encodeURIComponent(user.uri)}`)) as {
    collection: SimSubscription[];
  };
  return answer.collection;
}

/** Disables the user's (only) subscription at the simulator, as Calendly does after 24 h of failures. */
export async function disableAtSimulator(h: Harness, user: SimUser): Promise<void> {
  const [subscription, ...others] = await simSubscriptions(h, user);
  if (!subscription || others.length > 0) throw new Error('expected exactly one subscription to disable');
  await h.sim_(`/_sim/webhook_subscriptions/${subscription.uuid}/disable`, { method: 'POST', body: {} });
}

/** Every BackfillRequested on the test's backfill stream, with its JetStream message id. */
export async function backfillRequests(h: Harness): Promise<(eventsV1.BackfillRequested & { msgId: string })[]> {
  const nc = await connect({ servers: testNatsUrl() });
  try {
    const jsm = await nc.jetstreamManager();
    const names = natsNames(h.prefix);
    const info = await jsm.streams.info(names.backfillStream);
    const found: (eventsV1.BackfillRequested & { msgId: string })[] = [];
    for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
      const message = await jsm.streams.getMessage(names.backfillStream, { seq });
      found.push({
        ...eventsV1.BackfillRequested.decode(message.data),
        msgId: message.header?.get('Nats-Msg-Id') ?? '',
      });
    }
    return found;
  } finally {
    await nc.close();
  }
}

export { waitFor };

/** A subscription on the seed's single URL, made at the simulator the way the seed made it; its URI. */
export async function createSeedSubscription(
  h: Harness,
  user: SimUser,
  options: { scope: 'user' | 'organization'; signingKey: string; events: string[] },
): Promise<string> {
  const created = (await h.sim_('/webhook_subscriptions', {
    token: user.personal_access_token,
    body: {
      url: `${h.receiver.url}/api/calendly/webhook`,
      events: options.events,
      organization: user.organization,
      scope: options.scope,
      ...(options.scope === 'user' ? { user: user.uri } : {}),
      signing_key: options.signingKey,
    },
  })) as { resource: { uri: string } };
  return created.resource.uri;
}
