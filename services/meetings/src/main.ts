// First, so OpenTelemetry can instrument what the imports below load (a no-op unless OTLP is configured).
import './tracing';
import { createCalendlyClient } from '@calsync/calendly-client';
import {
  connectNats,
  createGrpcServer,
  createLogger,
  createMetricsRegistry,
  createPool,
  calendlyClientOptionsOf,
  grpcSecurityOf,
  natsIsConnected,
  natsNames,
  pingPostgres,
  runService,
  startMetricsServer,
  startService,
  watchHealth,
  type Logger,
} from '@calsync/service-kit';
import { createBackfill } from './backfill/backfill-service';
import { createIdentityClient, identityTokenSource } from './upstream/identity-tokens';
import { createImportCheckpoints } from './backfill/import-checkpoints';
import { createImportLocks } from './backfill/import-locks';
import { createRateBudget } from './backfill/rate-budget';
import { loadMeetingsConfig, type MeetingsConfig } from './config';
import { migrateSchema } from './migrations';
import { createDeadLetterReplay } from './consumer/dead-letter-replay';
import { createDeadLetters, loggedDeadLetters } from './consumer/dead-letters';
import { createDeliveryLog, operatorPageBounds, recordDelivery, userPageBounds } from './deliveries/delivery-log';
import { meetingsAdminGrpcService } from './grpc/meetings-admin-service';
import { backfillRequestedHandler, calendlyEventHandler, isPermanentFailure } from './consumer/handlers';
import { createPullWorker } from './consumer/pull-worker';
import { createChangeFeed, declareFeedStream } from './feed/feed-stream';
import { createOutboxRelay } from './feed/outbox-relay';
import { backfillDurableName, declareTopology } from './consumer/topology';
import { createMeetingQueries } from './meetings/meeting-queries';
import { createMeetingsApplier } from './meetings/meetings-applier';
import { meetingsGrpcService } from './grpc/meetings-service';
import { createStreamUserMessages } from './purge/user-messages-stream';
import { createUserPurge } from './purge/user-purge';
import { startInboxRetention } from './inbox/inbox-retention';
import { createMeetingsMetrics } from './metrics';

export interface MeetingsApp {
  stop(): Promise<void>;
  ports: { grpc: number; metrics: number };
}

const healthCheckMs = 5_000;

/** Boots the service exactly as production runs it; tests call this with their own config. */
export async function start(config: MeetingsConfig, options: { log?: Logger } = {}): Promise<MeetingsApp> {
  const log = options.log ?? createLogger({ service: 'meetings', level: config.LOG_LEVEL });
  await migrateSchema(config, log);

  return startService({ log, shutdownTimeoutMs: config.SHUTDOWN_TIMEOUT_MS }, async (opened) => {
    const db = createPool({
      url: config.DATABASE_URL,
      schema: config.DATABASE_SCHEMA,
      max: config.DATABASE_POOL_MAX,
      log,
    });
    opened.closeWith('postgres', () => db.end());
    const nats = await connectNats({ url: config.NATS_URL, name: 'meetings', log });
    opened.closeWith('nats', () => nats.drain());
    const js = nats.jetstream();
    const jsm = await nats.jetstreamManager();
    const names = natsNames(config.NATS_SUBJECT_PREFIX);
    await declareTopology(jsm, {
      names,
      durableName: config.CONSUMER_DURABLE_NAME,
      maxDeliver: config.CONSUMER_MAX_DELIVER,
      ackWaitMs: config.CONSUMER_ACK_WAIT_MS,
      streamReplicas: config.NATS_STREAM_REPLICAS,
    });
    await declareFeedStream(jsm, names, {
      retentionHours: config.FEED_RETENTION_HOURS,
      replicas: config.NATS_STREAM_REPLICAS,
    });
    const feed = createChangeFeed({ js, jsm, names });
    const relay = createOutboxRelay({
      pool: db,
      databaseUrl: config.DATABASE_URL,
      lockName: `${config.DATABASE_SCHEMA}:${config.NATS_SUBJECT_PREFIX}`,
      publish: feed.publish,
      log,
    });
    const closing = new AbortController();

    const registry = createMetricsRegistry('meetings');
    const metrics = createMeetingsMetrics(registry, log);
    const applier = createMeetingsApplier({
      pool: db,
      log,
      observe: metrics.observeApply,
      observeTransaction: metrics.observeApplyTransaction,
      relay,
      transactions: config.CONSUMER_CONCURRENCY,
    });
    const queries = createMeetingQueries({ pool: db });
    const security = grpcSecurityOf(config);
    const identity = createIdentityClient(config.IDENTITY_ADDR, security);
    opened.closeWith('identity client', () => identity.close());
    const calendly = createCalendlyClient({
      apiUrl: config.CALENDLY_API_URL,
      authUrl: config.CALENDLY_AUTH_URL,
      ...calendlyClientOptionsOf(config),
      log,
      registry,
    });
    const checkpoints = createImportCheckpoints({ pool: db });
    // Closed after the consumers (in reverse order), when no import holds a lock.
    const importLocks = createImportLocks({ databaseUrl: config.DATABASE_URL, log });
    opened.closeWith('import locks', () => importLocks.close());
    const backfill = createBackfill({
      log,
      tokens: identityTokenSource(identity),
      calendly,
      applier,
      checkpoints,
      locks: importLocks,
      budget: createRateBudget({ reservePercent: config.IMPORT_RATE_RESERVE_PERCENT }),
      observe: metrics.backfill,
    });
    const deadLetters = createDeadLetters({ js, names });
    const healthy = async () => natsIsConnected(nats) && (await pingPostgres(db));
    const workerDefaults = {
      nc: nats,
      js,
      jsm,
      maxDeliver: config.CONSUMER_MAX_DELIVER,
      backoffMs: config.CONSUMER_BACKOFF_MS,
      isPermanent: isPermanentFailure,
      healthy,
      deadLetters,
      log,
    };
    const eventsWorker = createPullWorker({
      ...workerDefaults,
      name: 'events',
      stream: names.eventsStream,
      durable: config.CONSUMER_DURABLE_NAME,
      // Every message pulled is in hand at once: those waiting while the applier's transactions
      // are busy are applied together by the next one.
      batchSize: config.CONSUMER_BATCH_SIZE,
      concurrency: config.CONSUMER_BATCH_SIZE,
      handle: calendlyEventHandler(applier),
      // The user sees a delivery given up on in their delivery log.
      deadLetters: loggedDeadLetters(
        deadLetters,
        (entry) => recordDelivery(db, { ...entry, outcome: 'dead_lettered' }),
        (error) => log.warn({ err: error }, 'could not log a dead-lettered delivery'),
      ),
      onDeadLetter: (cause) => metrics.deadLettered('events', cause),
    });
    const backfillWorker = createPullWorker({
      ...workerDefaults,
      name: 'backfill',
      stream: names.backfillStream,
      durable: backfillDurableName(config.CONSUMER_DURABLE_NAME),
      // A backfill pages through Calendly for a while (waiting out rate limits): a few users at
      // once on a consumer of their own, so deliveries never queue behind them; kept alive while
      // they run.
      batchSize: config.IMPORT_CONCURRENCY,
      concurrency: config.IMPORT_CONCURRENCY,
      keepAliveMs: Math.max(250, Math.floor(config.CONSUMER_ACK_WAIT_MS / 3)),
      handle: backfillRequestedHandler(backfill, { maxDeliver: config.CONSUMER_MAX_DELIVER }),
      onDeadLetter: (cause) => metrics.deadLettered('backfill', cause),
    });
    metrics.trackLag('events', eventsWorker.lag);
    metrics.trackLag('backfill', backfillWorker.lag);

    const grpc = createGrpcServer({
      services: [
        meetingsGrpcService({
          queries,
          deliveries: createDeliveryLog({ pool: db, bounds: userPageBounds }),
          purge: createUserPurge({ pool: db, messages: createStreamUserMessages({ js, jsm, names }), log }),
          feed,
          imports: checkpoints,
          closing: closing.signal,
          log,
        }),
        meetingsAdminGrpcService({
          deadLetters: createDeadLetterReplay({ js, jsm, names }),
          deliveries: createDeliveryLog({ pool: db, bounds: operatorPageBounds }),
          log,
        }),
      ],
      host: config.GRPC_HOST,
      port: config.GRPC_PORT,
      security,
      log,
      registry,
      shutdownTimeoutMs: config.SHUTDOWN_TIMEOUT_MS,
      shutdownDelayMs: config.SHUTDOWN_DELAY_MS,
    });
    // Closed in reverse: the consumers first, then the relay, then gRPC and (its /readyz follows gRPC) metrics.
    const metricsServer = await startMetricsServer({
      registry,
      port: config.METRICS_PORT,
      log,
      ready: () => grpc.isServing(),
    });
    opened.closeWith('metrics', () => metricsServer.close());
    opened.closeWith('grpc', () => grpc.stop());
    const grpcPort = await grpc.start();
    opened.closeWith('outbox relay', () => relay.stop());
    opened.closeWith('consumers', async () => void (await Promise.all([eventsWorker.stop(), backfillWorker.stop()])));
    await eventsWorker.start();
    await backfillWorker.start();
    relay.start();

    const health = await watchHealth({ server: grpc, check: healthy, log, intervalMs: healthCheckMs });
    const inboxRetention = startInboxRetention({
      pool: db,
      retentionDays: config.INBOX_RETENTION_DAYS,
      deliveryLogRetentionDays: config.DELIVERY_LOG_RETENTION_DAYS,
      log,
    });
    opened.closeWith('health', () => {
      health.stop();
      inboxRetention.stop();
      grpc.setServing(false);
      closing.abort();
    });
    log.info({ grpcPort, metricsPort: metricsServer.port }, 'ready');
    return { ports: { grpc: grpcPort, metrics: metricsServer.port } };
  });
}

if (require.main === module) {
  runService({ service: 'meetings', loadConfig: loadMeetingsConfig, migrate: migrateSchema, start });
}
