// First, so OpenTelemetry can instrument what the imports below load (a no-op unless OTLP is configured).
import './tracing';
import { createCalendlyClient } from '@calsync/calendly-client';
import {
  createGrpcServer,
  createLogger,
  createMetricsRegistry,
  createPool,
  createSealer,
  resealAll,
  startService,
  calendlyClientOptionsOf,
  grpcSecurityOf,
  pingPostgres,
  runService,
  startMetricsServer,
  watchHealth,
  type Logger,
} from '@calsync/service-kit';
import { loadIdentityConfig, type IdentityConfig } from './config';
import { migrateSchema } from './migrations';
import { createAccessTokens } from './connections/access-tokens';
import { createConnections } from './connections/connections';
import { pruneTokenRequests } from './connections/token-budget';
import { createConnectionFleet } from './fleet/connection-fleet';
import { identityAdminService } from './grpc/identity-admin-service';
import { identityService } from './grpc/identity-service';
import { sealedTables } from './rotation/reseal';
import { createIdentityMetrics } from './metrics';
import { pruneExpiredOAuthStates } from './oauth/oauth-state-repository';

const healthIntervalMs = 5_000;
const housekeepingIntervalMs = 60_000;

export interface IdentityApp {
  stop(): Promise<void>;
  ports: { grpc: number; metrics: number };
}

/** Wires identity: config -> logger -> pool -> domain -> gRPC and metrics servers. */
export async function start(config: IdentityConfig, options: { log?: Logger } = {}): Promise<IdentityApp> {
  const log = options.log ?? createLogger({ service: 'identity', level: config.LOG_LEVEL });
  await migrateSchema(config, log);
  return startService({ log, shutdownTimeoutMs: config.SHUTDOWN_TIMEOUT_MS }, async (opened) => {
    const pool = createPool({
      url: config.DATABASE_URL,
      schema: config.DATABASE_SCHEMA,
      max: config.DATABASE_POOL_MAX,
      applicationName: 'identity',
      log,
    });
    opened.closeWith('postgres', () => pool.end());
    const registry = createMetricsRegistry('identity');
    const sealer = createSealer({ keys: config.SEALING_KEYS, activeKeyId: config.SEALING_ACTIVE_KEY_ID });
    const calendly = createCalendlyClient({
      apiUrl: config.CALENDLY_API_URL,
      authUrl: config.CALENDLY_AUTH_URL,
      clientId: config.CALENDLY_CLIENT_ID,
      clientSecret: config.CALENDLY_CLIENT_SECRET,
      ...calendlyClientOptionsOf(config),
      log,
      registry,
    });
    const metrics = createIdentityMetrics({ registry, pool, log });
    const connections = createConnections({
      log,
      pool,
      sealer,
      calendly,
      settings: {
        authUrl: config.CALENDLY_AUTH_URL,
        clientId: config.CALENDLY_CLIENT_ID,
        scopes: config.CALENDLY_OAUTH_SCOPES,
        stateTtlSeconds: config.OAUTH_STATE_TTL_SECONDS,
        tokenRequestsPerMinute: config.TOKEN_REQUESTS_PER_MINUTE,
      },
    });
    const accessTokens = createAccessTokens({
      log,
      pool,
      sealer,
      calendly,
      metrics,
      settings: {
        defaultMinValiditySeconds: config.ACCESS_TOKEN_MIN_VALIDITY_SECONDS,
        tokenRequestsPerMinute: config.TOKEN_REQUESTS_PER_MINUTE,
        refreshLockTimeoutMs: config.REFRESH_LOCK_TIMEOUT_MS,
      },
    });

    const grpcServer = createGrpcServer({
      services: [
        identityService({ connections, accessTokens, log }),
        identityAdminService({
          reseal: () => resealAll({ pool, sealer, log, tables: sealedTables, batchSize: config.ROTATE_BATCH_SIZE }),
          activeKeyId: sealer.activeKeyId,
          fleet: createConnectionFleet({ pool }),
          log,
        }),
      ],
      host: config.GRPC_HOST,
      port: config.GRPC_PORT,
      security: grpcSecurityOf(config),
      log,
      registry,
      shutdownTimeoutMs: config.SHUTDOWN_TIMEOUT_MS,
      shutdownDelayMs: config.SHUTDOWN_DELAY_MS,
    });
    const grpcPort = await grpcServer.start();
    opened.closeWith('grpc', () => grpcServer.stop());
    const metricsServer = await startMetricsServer({
      registry,
      port: config.METRICS_PORT,
      log,
      ready: () => grpcServer.isServing(),
    });
    opened.closeWith('metrics', () => metricsServer.close());

    // Serving only while Postgres answers: without it no call can succeed.
    const health = await watchHealth({
      server: grpcServer,
      check: () => pingPostgres(pool),
      log,
      intervalMs: healthIntervalMs,
    });
    // Expired connect states and token requests older than the rate window are never read again.
    const housekeeping = setInterval(() => {
      Promise.all([pruneExpiredOAuthStates(pool), pruneTokenRequests(pool)]).catch((error: unknown) =>
        log.warn({ err: error }, 'housekeeping failed'),
      );
    }, housekeepingIntervalMs);
    housekeeping.unref();
    opened.closeWith('timers', () => (health.stop(), clearInterval(housekeeping)));

    log.info({ grpcPort, metricsPort: metricsServer.port }, 'ready');
    return { ports: { grpc: grpcPort, metrics: metricsServer.port } };
  });
}

if (require.main === module) {
  runService({ service: 'identity', loadConfig: loadIdentityConfig, migrate: migrateSchema, start });
}
