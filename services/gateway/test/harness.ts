import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startSimulator, type Simulator, type SimulatorSettings } from '@calsync/calendly-sim';
import { createSimUser as createUserAt, simControl, type SimUser } from '@calsync/calendly-sim/testing';
import { sealerFor, startTestIdentity } from '@calsync/identity/testing';
import { start as startMeetings } from '@calsync/meetings';
import { loadMeetingsConfig } from '@calsync/meetings/dist/config';
import { eventsV1 } from '@calsync/proto';
import { grpcIdentities, natsNames, type NatsNames } from '@calsync/service-kit';
import {
  captureLogger,
  createTestDatabase,
  testGrpcEnv,
  testNatsUrl,
  testSubjectPrefix,
  waitFor,
} from '@calsync/service-kit/testing';
import { start as startSubscription } from '@calsync/subscription';
import { loadSubscriptionConfig, type SubscriptionConfig } from '@calsync/subscription/dist/config';
import { signatureHeaderFor } from '@calsync/subscription/dist/verify/signature';
import { signingKeyContext } from '@calsync/subscription/dist/webhooks/hook-loader';
import { SignJWT } from 'jose';
import { connect, type NatsConnection } from 'nats';
import { Client } from 'pg';
import { loadGatewayConfig } from '../src/config';
import { start as startGateway, type GatewayApp } from '../src/main';

interface LocalInfra {
  freePort(): Promise<number>;
  startLocalNats(options: { dir: string; port?: number }): Promise<{ url: string; stop(): Promise<void> }>;
}
// The same helpers `npm run dev` and the test run use to start infrastructure.
// eslint-disable-next-line @typescript-eslint/no-require-imports
export const localInfra = require('../../../scripts/lib/local-infra.cjs') as LocalInfra;

export type { SimUser };

/** One webhook POST the simulator made, as /_sim/deliveries lists it. */
export interface DeliveryAttempt {
  subscription: string;
  event: string;
  url: string;
  outcome: 'delivered' | 'failed';
  status: number | null;
  injected: boolean;
  headers: Record<string, string>;
  body: string;
  response_body: string | null;
}

/** An event as the gateway stored it in JetStream. */
export interface StoredEvent {
  sequence: number;
  subject: string;
  headers: Record<string, string>;
  event: eventsV1.CalendlyEvent;
}

export interface GatewaySystem {
  url: string;
  /** The gRPC addresses of the services behind the gateway, for callers other than the gateway. */
  addresses: { identity: string; subscription: string; meetings: string };
  /** The database every service of this system keeps its schema in. */
  databaseUrl: string;
  appUrl: string;
  sim: Simulator;
  names: NatsNames;
  /** The gateway's log lines (JSON). */
  gatewayLines: string[];
  gateway: GatewayApp;
  jwtFor(userId: string, claims?: Record<string, unknown>): Promise<string>;
  /** A call to the gateway as `userId` (a signed JWT), JSON in and out. */
  api(
    path: string,
    init?: { userId?: string; method?: string; body?: unknown; headers?: Record<string, string> },
  ): Promise<{ status: number; body: Record<string, unknown>; headers: Headers }>;
  simCall<T = Record<string, unknown>>(path: string, body?: unknown, method?: string): Promise<T>;
  createSimUser(name: string, extra?: Record<string, unknown>): Promise<SimUser>;
  /** Creates a simulated Calendly user and connects it to `userId` with its personal access token. */
  connectWithToken(userId: string): Promise<SimUser>;
  /** Books a meeting hosted by `host`; resolves the simulator's answer. */
  book(host: SimUser, n: number): Promise<{ scheduled_event: { uri: string }; invitee: { uri: string } }>;
  /**
   * Books a meeting whose invitee.created delivery the simulator signs and records but does
   * not send, so the test can send it itself (and as often as it likes).
   */
  withheldDelivery(host: SimUser, n: number): Promise<DeliveryAttempt>;
  /** Waits for a finished delivery attempt that satisfies `match`. */
  waitForAttempt(match: (attempt: DeliveryAttempt) => boolean): Promise<DeliveryAttempt>;
  /** Sends a recorded delivery again, byte for byte, to `path` (its own callback path by default). */
  replay(
    attempt: DeliveryAttempt,
    options?: { path?: string; headers?: Record<string, string>; body?: string },
  ): Promise<Response>;
  /**
   * Sends `body` to the attempt's callback path as Calendly would send it: signed now with the
   * key Calendly signs that hook with (its own, read from subscription's table, or the OAuth
   * application's).
   */
  replaySigned(attempt: DeliveryAttempt, body: string): Promise<Response>;
  /** The subscription service's gRPC address. */
  subscriptionAddr: string;
  /** Stops the subscription service (the gateway keeps running). */
  stopSubscription(): Promise<void>;
  /** Starts the subscription service again on the same port and database (with `env` over its settings). */
  startSubscription(env?: Partial<SubscriptionConfig>): Promise<void>;
  /**
   * A second subscription replica (on the same database) and a second gateway whose
   * SUBSCRIPTION_ADDR lists both replicas, as they would run behind a headless Service.
   */
  scaleOut(): Promise<{
    gatewayUrl: string;
    /** The metrics port of the first and the second subscription replica. */
    subscriptionMetricsPorts: [number, number];
  }>;
  /**
   * A second gateway on the same NATS whose identity, subscription and meetings addresses answer
   * nothing (a port just freed), with short deadlines: every call it makes fails UNAVAILABLE.
   */
  gatewayWithoutUpstreams(options?: {
    /** Verify JWTs with this key set (one that answers nothing gives 503 auth_unavailable). */
    jwksUrl?: string;
  }): Promise<{ url: string; gateway: GatewayApp }>;
  /** Every event in the gateway's stream. */
  storedEvents(): Promise<StoredEvent[]>;
  stop(): Promise<void>;
}

export const jwtSecret = randomBytes(32).toString('base64url');
const sealingKey = randomBytes(32).toString('base64');
const sealingKeys = `k1=${sealingKey}`;
/** Opens what the services seal with `sealingKey` (the hooks' signing keys, for replaySigned). */
const testSealer = sealerFor({ k1: sealingKey }, 'k1');

/**
 * The simulator and the real identity, subscription, meetings and gateway services, started
 * in-process with their production wiring on a database and a NATS prefix of this test file.
 * `gatewayNatsUrl` lets a test give the gateway a NATS server of its own to stop and restart.
 */
export async function startGatewaySystem(
  label: string,
  options: {
    gatewayNatsUrl?: string;
    sim?: Partial<SimulatorSettings>;
    gatewayEnv?: Record<string, string>;
    meetingsEnv?: Record<string, string>;
    subscriptionEnv?: Record<string, string>;
  } = {},
): Promise<GatewaySystem> {
  const database = await createTestDatabase(label);
  const prefix = testSubjectPrefix(label);
  const names = natsNames(prefix);
  const quiet = captureLogger(label, process.env.GATEWAY_TEST_LOG ?? 'silent').log;
  const gatewayLog = captureLogger('gateway', 'info');
  // Stopped in reverse order of start; the database is dropped once every service is gone.
  const stops: (() => Promise<void>)[] = [];
  const stopAll = async () => {
    for (const stop of stops.splice(0).reverse()) await stop().catch(() => undefined);
    await database.drop();
  };
  try {
    const gatewayPort = await localInfra.freePort();
    const url = `http://127.0.0.1:${gatewayPort}`;
    const demoDir = mkdtempSync(join(tmpdir(), 'gateway-app-'));
    writeFileSync(join(demoDir, 'index.html'), '<p>the app</p>');
    stops.push(() => Promise.resolve(rmSync(demoDir, { recursive: true, force: true })));
    const appUrl = `${url}/demo/`;

    // Calendly's retries are left far out so a test's own sends are the only repeats.
    const sim = await startSimulator({
      settings: { retry: { baseMs: 600_000, factor: 2, windowMs: 3_600_000 }, ...options.sim },
    });
    stops.push(() => sim.stop());
    const calendly = { CALENDLY_API_URL: sim.url, CALENDLY_AUTH_URL: sim.url };
    const grpc = { GRPC_HOST: '127.0.0.1', GRPC_PORT: '0', METRICS_PORT: '0' };
    const common = {
      DATABASE_URL: database.url,
      NATS_URL: testNatsUrl(),
      NATS_SUBJECT_PREFIX: prefix,
      SEALING_KEYS: sealingKeys,
      SEALING_ACTIVE_KEY_ID: 'k1',
      LOG_LEVEL: 'silent',
    };

    const identity = await startTestIdentity({ databaseUrl: database.url, sim, keys: { k1: sealingKey }, log: quiet });
    stops.push(() => identity.stop());
    const identityAddr = identity.address;
    const meetings = await startMeetings(
      loadMeetingsConfig({
        ...(await testGrpcEnv(grpcIdentities.meetings)),
        ...common,
        ...grpc,
        ...calendly,
        IDENTITY_ADDR: identityAddr,
        ...options.meetingsEnv,
      }),
      { log: quiet },
    );
    stops.push(() => meetings.stop());
    // A fixed port, so a test can stop subscription and start it again where the gateway looks.
    const subscriptionPort = await localInfra.freePort();
    const subscriptionConfig = loadSubscriptionConfig({
      ...(await testGrpcEnv(grpcIdentities.subscription)),
      ...common,
      ...grpc,
      ...calendly,
      GRPC_PORT: String(subscriptionPort),
      IDENTITY_ADDR: identityAddr,
      MEETINGS_ADDR: `127.0.0.1:${meetings.ports.grpc}`,
      PUBLIC_BASE_URL: url,
      CALENDLY_WEBHOOK_SIGNING_KEY: sim.settings.applicationSigningKey,
      RECONCILE_INTERVAL_SECONDS: '0',
      ...options.subscriptionEnv,
    });
    let subscription = await startSubscription(subscriptionConfig, { log: quiet });
    stops.push(() => subscription.stop());

    const gatewayNatsUrl = options.gatewayNatsUrl ?? testNatsUrl();
    const gatewayTls = await testGrpcEnv(grpcIdentities.gateway);
    const gatewayConfig = (httpPort: number, subscriptionAddr: string) =>
      loadGatewayConfig({
        ...gatewayTls,
        NATS_URL: gatewayNatsUrl,
        NATS_SUBJECT_PREFIX: prefix,
        HTTP_HOST: '127.0.0.1',
        HTTP_PORT: String(httpPort),
        PUBLIC_BASE_URL: url,
        APP_URL: appUrl,
        DEMO_DIR: demoDir,
        IDENTITY_ADDR: identityAddr,
        SUBSCRIPTION_ADDR: subscriptionAddr,
        MEETINGS_ADDR: `127.0.0.1:${meetings.ports.grpc}`,
        AUTH_JWT_SECRET: jwtSecret,
        SHUTDOWN_TIMEOUT_MS: '5000',
        ...options.gatewayEnv,
      });
    const gateway = await startGateway(gatewayConfig(gatewayPort, `127.0.0.1:${subscriptionPort}`), {
      log: gatewayLog.log,
    });
    stops.push(() => gateway.stop());

    let nc: NatsConnection | undefined;
    const natsConnection = async () => {
      nc ??= await connect({ servers: gatewayNatsUrl, maxReconnectAttempts: -1, reconnectTimeWait: 200 });
      return nc;
    };
    stops.push(async () => {
      await nc?.close();
    });

    const jwtFor = (userId: string, claims: Record<string, unknown> = {}) =>
      new SignJWT({ exp: Math.floor(Date.now() / 1000) + 600, ...claims })
        .setProtectedHeader({ alg: 'HS256' })
        .setSubject(userId)
        .setIssuedAt()
        .sign(new TextEncoder().encode(jwtSecret));

    const simCall = <T>(path: string, body?: unknown, method?: string): Promise<T> =>
      simControl<T>(sim, method ?? (body === undefined ? 'GET' : 'POST'), path, body);

    const api: GatewaySystem['api'] = async (path, init = {}) => {
      const headers: Record<string, string> = { accept: 'application/json', ...init.headers };
      if (init.userId) headers.authorization = `Bearer ${await jwtFor(init.userId)}`;
      if (init.body !== undefined) headers['content-type'] = 'application/json';
      const response = await fetch(`${url}${path}`, {
        method: init.method ?? 'GET',
        headers,
        redirect: 'manual',
        body: init.body === undefined ? undefined : JSON.stringify(init.body),
      });
      const text = await response.text();
      return {
        status: response.status,
        body: (text ? JSON.parse(text) : {}) as Record<string, unknown>,
        headers: response.headers,
      };
    };

    const createSimUser = (name: string, extra: Record<string, unknown> = {}) =>
      createUserAt(sim, { name, plan: 'standard', ...extra });

    const system: GatewaySystem = {
      url,
      addresses: {
        identity: identityAddr,
        subscription: `127.0.0.1:${subscriptionPort}`,
        meetings: `127.0.0.1:${meetings.ports.grpc}`,
      },
      databaseUrl: database.url,
      appUrl,
      sim,
      names,
      gatewayLines: gatewayLog.lines,
      gateway,
      jwtFor,
      api,
      simCall,
      createSimUser,
      async connectWithToken(userId) {
        const user = await createSimUser(userId);
        const answer = await api('/api/calendly/token', {
          userId,
          method: 'POST',
          body: { token: user.personal_access_token },
        });
        if (answer.status !== 200)
          throw new Error(`connect ${userId}: ${answer.status} ${JSON.stringify(answer.body)}`);
        return user;
      },
      book(host, n) {
        const start = new Date(Date.UTC(2031, 0, 1) + n * 3_600_000);
        return simCall('/_sim/bookings', {
          user: host.uri,
          invitee: { name: `Invitee ${n}`, email: `invitee${n}@example.com` },
          start_time: start.toISOString(),
          end_time: new Date(start.getTime() + 1_800_000).toISOString(),
        });
      },
      async withheldDelivery(host, n) {
        const { collection } = await simCall<{ collection: { uuid: string }[] }>(
          `/_sim/webhook_subscriptions?user=${encodeURIComponent(host.uri)}&state=active`,
        );
        const subscriptionUuid = collection[0]?.uuid;
        if (!subscriptionUuid) throw new Error(`${host.uri} has no active webhook subscription`);
        await simCall('/_sim/faults', { fail_deliveries: { subscription: subscriptionUuid, count: 1, mode: 'skip' } });
        const booking = await system.book(host, n);
        return system.waitForAttempt(
          (a) => a.injected && a.event === 'invitee.created' && a.body.includes(booking.invitee.uri),
        );
      },
      async waitForAttempt(match) {
        let seen: DeliveryAttempt[] = [];
        return waitFor(
          async () => {
            seen = (await simCall<{ collection: DeliveryAttempt[] }>('/_sim/deliveries')).collection;
            return seen.find(match);
          },
          { timeoutMs: 30_000 },
        ).catch((error: unknown) => {
          throw new Error(
            `no matching delivery attempt; attempts: ${JSON.stringify(seen.map((a) => [a.event, a.status]))}`,
            { cause: error },
          );
        });
      },
      replay(attempt, replayOptions = {}) {
        const path = replayOptions.path ?? new URL(attempt.url).pathname;
        return fetch(`${url}${path}`, {
          method: 'POST',
          headers: { ...attempt.headers, ...replayOptions.headers },
          body: replayOptions.body ?? attempt.body,
        });
      },
      async replaySigned(attempt, body) {
        const hookId = new URL(attempt.url).pathname.split('/').pop()!;
        const db = new Client({ connectionString: database.url });
        await db.connect();
        let key: string;
        try {
          const { rows } = await db.query<{ sealed: string | null }>(
            'SELECT signing_key_sealed AS sealed FROM subscription.webhooks WHERE hook_id = $1',
            [hookId],
          );
          const { sealed } = rows[0]!;
          // No key of its own: Calendly signs this hook's deliveries with the OAuth application's.
          key = sealed ? testSealer.open(sealed, signingKeyContext(hookId)) : sim.settings.applicationSigningKey;
        } finally {
          await db.end();
        }
        const signature = signatureHeaderFor(key, Math.floor(Date.now() / 1000), body);
        return this.replay(attempt, { body, headers: { 'calendly-webhook-signature': signature } });
      },
      async storedEvents() {
        const jsm = await (await natsConnection()).jetstreamManager();
        const info = await jsm.streams.info(names.eventsStream);
        const events: StoredEvent[] = [];
        for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq += 1) {
          const message = await jsm.streams.getMessage(names.eventsStream, { seq }).catch(() => undefined);
          if (!message) continue;
          const headers: Record<string, string> = {};
          for (const [key, values] of message.header ?? []) headers[key] = values.join(',');
          events.push({
            sequence: message.seq,
            subject: message.subject,
            headers,
            event: eventsV1.CalendlyEvent.decode(message.data),
          });
        }
        return events;
      },
      async scaleOut() {
        const secondPort = await localInfra.freePort();
        const second = await startSubscription({ ...subscriptionConfig, GRPC_PORT: secondPort }, { log: quiet });
        stops.push(() => second.stop());
        const secondGateway = await startGateway(
          gatewayConfig(0, `127.0.0.1:${subscriptionPort},127.0.0.1:${secondPort}`),
          { log: quiet },
        );
        stops.push(() => secondGateway.stop());
        return {
          gatewayUrl: `http://127.0.0.1:${secondGateway.ports.http}`,
          subscriptionMetricsPorts: [subscription.ports.metrics, second.ports.metrics],
        };
      },
      async gatewayWithoutUpstreams(lonelyOptions = {}) {
        const nowhere = `127.0.0.1:${await localInfra.freePort()}`;
        const lonely = await startGateway(
          loadGatewayConfig({
            ...gatewayTls,
            NATS_URL: gatewayNatsUrl,
            NATS_SUBJECT_PREFIX: prefix,
            HTTP_HOST: '127.0.0.1',
            HTTP_PORT: '0',
            PUBLIC_BASE_URL: url,
            APP_URL: appUrl,
            IDENTITY_ADDR: nowhere,
            SUBSCRIPTION_ADDR: nowhere,
            MEETINGS_ADDR: nowhere,
            ...(lonelyOptions.jwksUrl ? { AUTH_JWKS_URL: lonelyOptions.jwksUrl } : { AUTH_JWT_SECRET: jwtSecret }),
            UPSTREAM_TIMEOUT_MS: '1000',
            VERIFY_TIMEOUT_MS: '1000',
            SHUTDOWN_TIMEOUT_MS: '5000',
          }),
          { log: quiet },
        );
        stops.push(() => lonely.stop());
        return { url: `http://127.0.0.1:${lonely.ports.http}`, gateway: lonely };
      },
      subscriptionAddr: `127.0.0.1:${subscriptionPort}`,
      stopSubscription: () => subscription.stop(),
      async startSubscription(env = {}) {
        subscription = await startSubscription({ ...subscriptionConfig, ...env }, { log: quiet });
      },
      stop: stopAll,
    };
    return system;
  } catch (error) {
    await stopAll();
    throw error;
  }
}

/**
 * One HTTP request through node:http, whose header values may carry any byte a client can put
 * on the wire (a string's characters are sent as latin1 bytes), unlike fetch, which refuses some.
 */
export function rawRequest(
  url: string,
  init: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const target = new URL(url);
    const body = init.body === undefined ? undefined : Buffer.from(init.body);
    const outgoing = request(
      {
        host: target.hostname,
        port: target.port,
        path: `${target.pathname}${target.search}`,
        method: init.method ?? 'GET',
        headers: {
          ...Object.fromEntries(Object.entries(init.headers ?? {}).filter(([name]) => !/^content-length$/i.test(name))),
          ...(body ? { 'content-length': String(body.length) } : {}),
        },
      },
      (response) => {
        let text = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (text += chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body: text }));
      },
    );
    outgoing.on('error', reject);
    outgoing.end(body);
  });
}

/**
 * A browser without JavaScript: follows redirects itself and keeps the cookies one origin (the
 * gateway's) sets, so a test can tell one person's browser from another's.
 */
export class Browser {
  readonly cookies = new Map<string, string>();
  constructor(private readonly origin: string) {}

  /** GETs `url` and follows redirects until `stopAt` matches a location (or an answer is not a redirect). */
  async get(
    url: string,
    init: { headers?: Record<string, string>; stopAt?: (location: URL) => boolean } = {},
  ): Promise<{ response: Response; url: URL }> {
    let next = new URL(url);
    let headers = init.headers ?? {};
    for (let hop = 0; hop < 10; hop += 1) {
      const sameOrigin = next.origin === this.origin;
      const cookie = [...this.cookies].map(([name, value]) => `${name}=${value}`).join('; ');
      const response = await fetch(next, {
        headers: { ...headers, ...(sameOrigin && cookie ? { cookie } : {}) },
        redirect: 'manual',
      });
      if (sameOrigin) this.keep(response);
      const location = response.headers.get('location');
      if (response.status < 300 || response.status >= 400 || !location) return { response, url: next };
      next = new URL(location, next);
      if (init.stopAt?.(next)) return { response, url: next };
      headers = {};
    }
    throw new Error(`too many redirects from ${url}`);
  }

  /** Keeps (or, for Max-Age=0, forgets) what the origin's Set-Cookie headers say. */
  keep(response: Response): void {
    for (const line of response.headers.getSetCookie()) {
      const [pair = '', ...attributes] = line.split(';').map((part) => part.trim());
      const separator = pair.indexOf('=');
      const name = pair.slice(0, separator);
      if (attributes.some((attribute) => /^max-age=0$/i.test(attribute))) this.cookies.delete(name);
      else this.cookies.set(name, pair.slice(separator + 1));
    }
  }
}

export { waitFor };

/** The authorize URL of a connect `userId` starts in `browser`, approved at the simulator as `calendlyUser`. */
export async function startOAuthConnect(
  system: GatewaySystem,
  browser: Browser,
  userId: string,
  calendlyUser: SimUser,
  accept = 'text/html',
): Promise<URL> {
  const { response } = await browser.get(`${system.url}/api/calendly/connect`, {
    headers: { authorization: `Bearer ${await system.jwtFor(userId)}`, accept },
    stopAt: () => true,
  });
  const authorize = new URL(
    accept === 'application/json'
      ? String(((await response.json()) as { authorizeUrl: string }).authorizeUrl)
      : response.headers.get('location')!,
  );
  // The simulator's consent page approves for the Calendly user it is told.
  authorize.searchParams.set('sim_user', calendlyUser.uuid);
  return authorize;
}

/** A user clicking "connect" and approving at Calendly, all in one browser; resolves where it lands. */
export async function connectWithOAuth(
  system: GatewaySystem,
  userId: string,
  calendlyUser: SimUser,
): Promise<Response> {
  const browser = new Browser(system.url);
  const landed = await browser.get((await startOAuthConnect(system, browser, userId, calendlyUser)).toString());
  return landed.response;
}

/** One entry of `GET /api/deliveries`. */
export interface DeliveryView {
  deliveryKey: string;
  eventType: string;
  outcome: string;
  receivedAt: string;
  recordedAt: string;
  latencyMs: number;
}

/** A user's delivery log through the gateway (the first page, or what `query` asks for). */
export async function deliveriesOf(system: GatewaySystem, userId: string, query = ''): Promise<DeliveryView[]> {
  const answer = await system.api(`/api/deliveries${query}`, { userId });
  if (answer.status !== 200)
    throw new Error(`deliveries of ${userId}: ${answer.status} ${JSON.stringify(answer.body)}`);
  return answer.body.deliveries as DeliveryView[];
}

/** A delivery the gateway stored for `userId` whose body can never apply: meetings dead-letters it. */
export async function publishUnreadable(
  system: GatewaySystem,
  nc: NatsConnection,
  userId: string,
  calendlyUser: { uri: string; email: string },
): Promise<void> {
  const event: eventsV1.CalendlyEvent = {
    deliveryKey: `unreadable-${userId}`,
    userId,
    calendlyUserUri: calendlyUser.uri,
    eventType: 'invitee.created',
    receivedAt: new Date(),
    payload: Buffer.from(`{"event":"invitee.created","payload":{"email":"${calendlyUser.email}"`),
    hookId: '',
  };
  await nc
    .jetstream()
    .publish(system.names.eventSubject(event.eventType), eventsV1.CalendlyEvent.encode(event).finish(), {
      msgID: event.deliveryKey,
    });
}
