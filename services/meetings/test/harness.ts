import { randomUUID } from 'node:crypto';
import { meetingsV1, eventsV1 } from '@calsync/proto';
import {
  duplicateWindowSeconds,
  eventsStreamConfig,
  eventsStreamDefaults,
  grpcIdentities,
  natsNames,
  type NatsNames,
  type PromiseClient,
} from '@calsync/service-kit';
import {
  captureLogger,
  clientAsAllowedCallers,
  testGrpcEnv,
  createTestDatabase,
  testNatsUrl,
  testSubjectPrefix,
  waitFor,
  type TestDatabase,
} from '@calsync/service-kit/testing';
import { connect, type JetStreamClient, type JetStreamManager, type NatsConnection } from 'nats';
import { Pool } from 'pg';
import { loadMeetingsConfig, type MeetingsConfig } from '../src/config';
import { start, type MeetingsApp } from '../src/main';
import { meetingsCallers } from '../src/grpc/meetings-service';
import { toCalendlyEvent, type Delivery } from './calendly-fixtures';

export type MeetingsClient = PromiseClient<typeof meetingsV1.MeetingsServiceService>;

/** The test's own database and NATS prefix, and a NATS connection to play the gateway with. */
export interface TestWorld {
  db: TestDatabase;
  prefix: string;
  names: NatsNames;
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  /** Reads the meetings schema directly, for what the API does not show (the inbox). */
  sql: Pool;
  /** The environment a meetings instance of this world runs with. */
  env(overrides?: Record<string, string>): Record<string, string>;
  /**
   * Publishes a Calendly delivery to `userId` exactly as the gateway does. `afterDuplicateWindow`
   * publishes it as JetStream takes it once its duplicate window has passed: stored again,
   * under a message id it has not seen (the delivery key inside is unchanged).
   */
  publish(
    userId: string,
    calendlyUserUri: string,
    delivery: Delivery,
    options?: { afterDuplicateWindow?: boolean },
  ): Promise<void>;
  publishRaw(subject: string, data: Uint8Array, msgID: string): Promise<void>;
  /** Declares the events stream the way the gateway does, before any meetings instance runs. */
  declareEventsStream(duplicateWindowMs?: number): Promise<void>;
  close(): Promise<void>;
}

export async function createTestWorld(label: string): Promise<TestWorld> {
  const db = await createTestDatabase(label);
  const prefix = testSubjectPrefix(label);
  const names = natsNames(prefix);
  const nc = await connect({ servers: testNatsUrl() });
  const js = nc.jetstream();
  const jsm = await nc.jetstreamManager();
  const sql = new Pool({ connectionString: db.url, max: 2, options: '-c search_path=meetings' });
  const tls = await testGrpcEnv(grpcIdentities.meetings);
  return {
    db,
    prefix,
    names,
    nc,
    js,
    jsm,
    sql,
    env: (overrides = {}) => ({
      ...tls,
      LOG_LEVEL: 'info',
      DATABASE_URL: db.url,
      NATS_URL: testNatsUrl(),
      NATS_SUBJECT_PREFIX: prefix,
      GRPC_HOST: '127.0.0.1',
      GRPC_PORT: '0',
      METRICS_PORT: '0',
      // Nothing listens there: tests that backfill pass a real identity address.
      IDENTITY_ADDR: '127.0.0.1:9',
      CONSUMER_MAX_DELIVER: '3',
      CONSUMER_BACKOFF_MS: '100,200',
      CONSUMER_ACK_WAIT_MS: '5000',
      SHUTDOWN_TIMEOUT_MS: '5000',
      ...overrides,
    }),
    async publish(userId, calendlyUserUri, delivery, options = {}) {
      const event = toCalendlyEvent(userId, calendlyUserUri, delivery);
      const ack = await js.publish(names.eventSubject(event.eventType), eventsV1.CalendlyEvent.encode(event).finish(), {
        msgID: options.afterDuplicateWindow ? `${event.deliveryKey}#${randomUUID()}` : event.deliveryKey,
        expect: { streamName: names.eventsStream },
      });
      if (options.afterDuplicateWindow && ack.duplicate) throw new Error('JetStream did not store the repeat');
    },
    async publishRaw(subject, data, msgID) {
      await js.publish(subject, data, { msgID });
    },
    async declareEventsStream(duplicateWindowMs = duplicateWindowSeconds * 1000) {
      await jsm.streams.add(
        eventsStreamConfig(names, {
          ...eventsStreamDefaults,
          maxAgeSeconds: 3600,
          duplicateWindowSeconds: duplicateWindowMs / 1000,
          replicas: 1,
        }),
      );
    },
    async close() {
      for (const stream of [
        names.eventsStream,
        names.backfillStream,
        names.deadLetterStream,
        names.meetingsChangedStream,
      ])
        await jsm.streams.delete(stream).catch(() => undefined);
      await nc.close();
      await sql.end();
      await db.drop();
    },
  };
}

/** A meetings instance started in-process through its exported start(), with a gRPC client. */
export interface RunningMeetings {
  app: MeetingsApp;
  client: MeetingsClient;
  config: MeetingsConfig;
  lines: string[];
  metrics(): Promise<string>;
  /** The sum of a counter's samples, over those whose labels contain `label` when given. */
  counter(name: string, label?: string): Promise<number>;
  stop(): Promise<void>;
}

export async function startMeetings(
  world: TestWorld,
  overrides: Record<string, string> = {},
): Promise<RunningMeetings> {
  const config = loadMeetingsConfig(world.env(overrides));
  const { log, lines } = captureLogger('meetings', config.LOG_LEVEL);
  const app = await start(config, { log });
  const client = await clientAsAllowedCallers(
    meetingsV1.MeetingsServiceService,
    `127.0.0.1:${app.ports.grpc}`,
    meetingsCallers,
  );
  const metrics = async () => (await fetch(`http://127.0.0.1:${app.ports.metrics}/metrics`)).text();
  return {
    app,
    client,
    config,
    lines,
    metrics,
    counter: async (name, label) => sumSamples(await metrics(), name, label),
    async stop() {
      client.close();
      await app.stop();
    },
  };
}

/** Resolves once the inbox of these users holds `count` delivery keys. */
export function inboxReaches(world: TestWorld, userIds: string[], count: number, timeoutMs = 10_000): Promise<true> {
  return waitFor(
    async () => {
      const { rows } = await world.sql.query<{ n: number }>(
        'SELECT count(*)::int AS n FROM inbox WHERE user_id = ANY($1)',
        [userIds],
      );
      return rows[0]!.n >= count || undefined;
    },
    { timeoutMs, what: `${count} applied deliveries` },
  );
}

/** All of a user's meetings through the API, every page. */
export async function allMeetings(client: MeetingsClient, userId: string): Promise<meetingsV1.Meeting[]> {
  const meetings: meetingsV1.Meeting[] = [];
  let cursor = '';
  do {
    const page = await client.listMeetings({ userId, pageSize: 100, cursor, status: 0 });
    meetings.push(...page.meetings);
    cursor = page.nextCursor;
  } while (cursor);
  return meetings;
}

/** A meeting without what differs between two users' copies of the same Calendly state. */
export function comparable(meeting: meetingsV1.Meeting): Omit<meetingsV1.Meeting, 'id' | 'userId'> {
  const { id: _id, userId: _userId, ...rest } = meeting;
  return rest;
}

/** The sum of a metric's samples in Prometheus text, over those whose labels contain `label`. */
export function sumSamples(text: string, name: string, label?: string): number {
  return text
    .split('\n')
    .filter((line) => line.startsWith(`${name}{`) || line.startsWith(`${name} `))
    .filter((line) => label === undefined || line.slice(0, line.lastIndexOf(' ')).includes(label))
    .reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(' ') + 1)), 0);
}

/** Every message in the world's dead-letter stream, oldest first. */
export async function readDeadLetters(world: TestWorld): Promise<eventsV1.DeadLetter[]> {
  const info = await world.jsm.streams.info(world.names.deadLetterStream);
  const letters: eventsV1.DeadLetter[] = [];
  for (let seq = info.state.first_seq; info.state.messages > 0 && seq <= info.state.last_seq; seq++) {
    const stored = await world.jsm.streams.getMessage(world.names.deadLetterStream, { seq });
    letters.push(eventsV1.DeadLetter.decode(stored.data));
  }
  return letters;
}

/**
 * Waits for the backfill request's import to complete (10 s unless told). Given a service's log
 * lines, a timeout also shows what it logged last.
 */
export async function importCompleted(
  world: TestWorld,
  requestId: string,
  options: { timeoutMs?: number; lines?: string[] } = {},
): Promise<void> {
  try {
    await waitFor(
      async () => {
        const { rows } = await world.sql.query<{ status: string }>('SELECT status FROM imports WHERE request_id = $1', [
          requestId,
        ]);
        return rows[0]?.status === 'completed' || undefined;
      },
      { what: `import ${requestId} to complete`, timeoutMs: options.timeoutMs },
    );
  } catch (error) {
    if (!options.lines) throw error;
    const message = error instanceof Error ? error.message : String(error);
    throw new Error(`${message}\nthe service's last lines:\n${options.lines.slice(-30).join('\n')}`);
  }
}

export { waitFor };
