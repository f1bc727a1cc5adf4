// First, so OpenTelemetry can instrument what the imports below load (a no-op unless OTLP is configured).
import './tracing';
import { createCalendlyClient } from '@calsync/calendly-client';
import {
  connectNats,
  createGrpcServer,
  createLogger,
  createMetricsRegistry,
  createPool,
  createSealer,
  calendlyClientOptionsOf,
  resealAll,
  grpcSecurityOf,
  natsNames,
  pingPostgres,
  runService,
  startMetricsServer,
  startService,
  watchHealth,
  type Logger,
} from '@calsync/service-kit';
import { createBackfillPublisher, declareBackfillStream } from './backfill/backfill-publisher';
import { loadSubscriptionConfig, type SubscriptionConfig } from './config';
import { subscriptionAdminService } from './grpc/subscription-admin-service';
import { sealedTables } from './webhooks/signing-key-reseal';
import { subscriptionService } from './grpc/subscription-service';
import { createHookFleet } from './fleet/hook-fleet';
import { createIdentityConnections } from './upstream/identity-connections';
import { createMeetingsImportReports } from './upstream/meetings-import-reports';
import { createSubscriptionMetrics } from './metrics';
import { migrateSchema } from './migrations';
import { createPoller, type PollSettings } from './polling/poller';
import { createSyncModeRepository } from './polling/sync-mode-repository';
import { createReconciler } from './reconcile/reconciler';
import { createSubscriptions } from './subscriptions/subscriptions';
import { createSyncStateReader } from './sync-state/sync-state-reader';
import { createVerifier } from './verify/verifier';
import { createDeliveryRecorder } from './webhooks/delivery-recorder';
import { createHookCache } from './webhooks/hook-cache';
import { createHookLoader } from './webhooks/hook-loader';
import { createWebhookRepository } from './webhooks/webhook-repository';

export interface SubscriptionApp {
  stop(): Promise<void>;
  ports: { grpc: number; metrics: number };
}

/** Starts the subscription service exactly as production wires it; tests call this too. */
export async function start(config: SubscriptionConfig, options: { log?: Logger } = {}): Promise<SubscriptionApp> {
  const log = options.log ?? createLogger({ service: 'subscription', level: config.LOG_LEVEL });
  await migrateSchema(config, log);

  return startService({ log, shutdownTimeoutMs: config.SHUTDOWN_TIMEOUT_MS }, async (opened) => {
    const pool = createPool({
      url: config.DATABASE_URL,
      schema: config.DATABASE_SCHEMA,
      max: config.DATABASE_POOL_MAX,
      applicationName: 'subscription',
      log,
    });
    opened.closeWith('postgres', () => pool.end());
    const registry = createMetricsRegistry('subscription');
    const metrics = createSubscriptionMetrics(registry, log);
    const sealer = createSealer({ keys: config.SEALING_KEYS, activeKeyId: config.SEALING_ACTIVE_KEY_ID });

    const nc = await connectNats({ url: config.NATS_URL, name: 'subscription', log });
    opened.closeWith('nats', () => nc.drain());
    const names = natsNames(config.NATS_SUBJECT_PREFIX);
    await declareBackfillStream(await nc.jetstreamManager(), names, config.NATS_STREAM_REPLICAS);
    const backfill = createBackfillPublisher({ js: nc.jetstream(), names });

    const repository = createWebhookRepository(pool);
    const loader = createHookLoader(repository, sealer);
    const cache = createHookCache({
      databaseUrl: config.DATABASE_URL,
      schema: config.DATABASE_SCHEMA,
      load: loader.load,
      loadPage: loader.loadPage,
      log,
      onLookup: metrics.cacheLookup,
    });
    opened.closeWith('hook cache', () => cache.stop());
    await cache.start();
    metrics.watchCache(cache);
    const fleet = createHookFleet({ repository, syncModes: createSyncModeRepository(pool) });
    metrics.watchFleet(fleet);
    const recorder = createDeliveryRecorder({ repository, log });
    recorder.start();
    opened.closeWith('delivery times', () => recorder.stop());

    const verifier = createVerifier({
      cache,
      legacy: loader,
      applicationSigningKey: config.CALENDLY_WEBHOOK_SIGNING_KEY,
      toleranceSeconds: config.SIGNATURE_TOLERANCE_SECONDS,
      log,
      onOutcome: metrics.verification,
      onVerified: recorder.note,
      onRefused: recorder.noteRefusal,
    });
    const security = grpcSecurityOf(config);
    const connections = createIdentityConnections({ address: config.IDENTITY_ADDR, security });
    opened.closeWith('identity client', () => connections.close());
    const imports = createMeetingsImportReports({ address: config.MEETINGS_ADDR, security });
    opened.closeWith('meetings client', () => imports.close());
    const polling: PollSettings = {
      intervalSeconds: config.POLL_INTERVAL_SECONDS,
      freshnessSeconds: config.POLL_FRESHNESS_SECONDS,
      nearDays: config.POLL_NEAR_DAYS,
      sweepIntervalSeconds: config.POLL_SWEEP_INTERVAL_SECONDS,
      sweepPastDays: config.POLL_SWEEP_PAST_DAYS,
      sweepFutureDays: config.IMPORT_FUTURE_DAYS,
    };
    const subscriptions = createSubscriptions({
      log,
      pool,
      sealer,
      calendly: createCalendlyClient({
        apiUrl: config.CALENDLY_API_URL,
        authUrl: config.CALENDLY_AUTH_URL,
        ...calendlyClientOptionsOf(config),
        log,
        registry,
      }),
      connections,
      backfill,
      settings: {
        publicBaseUrl: config.PUBLIC_BASE_URL,
        applicationSigningKey: config.CALENDLY_WEBHOOK_SIGNING_KEY,
        oauthHonoursSigningKey: config.CALENDLY_OAUTH_HONOURS_SIGNING_KEY,
        backfillHorizonDays: config.BACKFILL_HORIZON_DAYS,
        importPastDays: config.IMPORT_PAST_DAYS,
        importFutureDays: config.IMPORT_FUTURE_DAYS,
        polling,
      },
    });
    const poller = createPoller({ log, pool, backfill, settings: polling, onPoll: metrics.poll });
    metrics.watchPoller(poller);
    opened.closeWith('poller', () => poller.stop());
    const reconciler = createReconciler({
      log,
      pool,
      databaseUrl: config.DATABASE_URL,
      subscriptions,
      intervalSeconds: config.RECONCILE_INTERVAL_SECONDS,
      concurrency: config.RECONCILE_CONCURRENCY,
      onResult: metrics.reconcileResult,
      onRun: metrics.reconcileRun,
      onOverrun: metrics.reconcileOverrun,
    });
    opened.closeWith('reconciler', () => reconciler.stop());

    const grpcServer = createGrpcServer({
      services: [
        subscriptionService({
          subscriptions,
          verifier,
          reconciler,
          syncStates: createSyncStateReader({ subscriptions, connections, imports, log }),
          log,
        }),
        subscriptionAdminService({
          fleet,
          reseal: () => resealAll({ pool, sealer, log, tables: sealedTables, batchSize: 500 }),
          activeKeyId: sealer.activeKeyId,
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
    // The metrics server (its /readyz follows gRPC) is closed after gRPC has drained.
    const metricsServer = await startMetricsServer({
      registry,
      port: config.METRICS_PORT,
      log,
      ready: () => grpcServer.isServing(),
    });
    opened.closeWith('metrics', () => metricsServer.close());
    opened.closeWith('grpc', () => grpcServer.stop());
    const grpcPort = await grpcServer.start();

    // Verification needs the hook cache, whose invalidations come through Postgres: serving only
    // while Postgres answers.
    const health = await watchHealth({ server: grpcServer, check: () => pingPostgres(pool), log });
    opened.closeWith('health', () => health.stop());
    reconciler.start();
    poller.start();
    log.info({ grpcPort, metricsPort: metricsServer.port }, 'ready');
    return { ports: { grpc: grpcPort, metrics: metricsServer.port } };
  });
}

if (require.main === module) {
  runService({
    service: 'subscription',
    loadConfig: loadSubscriptionConfig,
    migrate: migrateSchema,
    start,
  });
}
