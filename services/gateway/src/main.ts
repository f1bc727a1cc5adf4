// First, so OpenTelemetry can instrument what the imports below load (a no-op unless OTLP is configured).
import './tracing';
import { createServer, type Server } from 'node:http';
import { setTimeout as delay } from 'node:timers/promises';
import { identityV1, meetingsV1, subscriptionV1 } from '@calsync/proto';
import {
  connectNats,
  createGrpcClient,
  createLogger,
  createMetricsRegistry,
  listen,
  grpcIdentities,
  grpcSecurityOf,
  logGrpcSecurity,
  runService,
  startService,
  natsIsConnected,
  natsNames,
  type EventsStreamLimits,
  type Logger,
  type NatsConnection,
} from '@calsync/service-kit';
import { createJwtVerifier } from './auth/jwt-verifier';
import { createStreamTokens } from './auth/stream-token';
import { loadGatewayConfig, oauthRedirectUri, type GatewayConfig } from './config';
import { createGatewayMetrics } from './metrics';
import { createConnectionService } from './upstream/connection-service';
import { createConnectCookie } from './connections/connect-cookie';
import { connectionRoutes } from './connections/connection-routes';
import { createEventPublisher, ensureEventsStream } from './events/event-publisher';
import { healthRoutes } from './health/health-routes';
import { createReadiness } from './health/readiness';
import { createHealthProbe } from './health/subscription-health';
import { createApp, servedRoutes, type ServedRoute } from './http/app';
import { openApiRoutes } from './http/openapi-routes';
import { createRequestTracker, type RequestTracker } from './http/request-tracker';
import { meetingEventsRoutes } from './meetings/meeting-events-routes';
import { meetingRoutes } from './meetings/meeting-routes';
import { deliveryRoutes } from './deliveries/delivery-routes';
import { createDeliveryIntake } from './webhooks/delivery-intake';
import { createSubscriptionVerifier } from './upstream/subscription-verifier';
import { webhookRoutes } from './webhooks/webhook-routes';

export type { GatewayConfig } from './config';
export { loadGatewayConfig } from './config';

/** A running gateway. */
export interface GatewayApp {
  /** Not ready at once, stop accepting, finish in-flight requests, drain NATS. Idempotent. */
  stop(): Promise<void>;
  ports: { http: number };
  /** Every route its router serves; /openapi.json describes exactly these (tested). */
  routes: ServedRoute[];
}

// Room for the CalendlyEvent fields and headers around the body in one NATS message.
const envelopeAllowanceBytes = 16 * 1024;

/** Starts the gateway with exactly the production wiring; resolves once it serves HTTP. */
export async function start(config: GatewayConfig, options: { log?: Logger } = {}): Promise<GatewayApp> {
  const log = options.log ?? createLogger({ service: 'gateway', level: config.LOG_LEVEL });
  const registry = createMetricsRegistry('gateway');
  const metrics = createGatewayMetrics(registry);
  const names = natsNames(config.NATS_SUBJECT_PREFIX);

  return startService({ log, shutdownTimeoutMs: config.SHUTDOWN_TIMEOUT_MS }, async (opened) => {
    const security = grpcSecurityOf(config);
    logGrpcSecurity(security, log);
    const upstream = { security, defaultTimeoutMs: config.UPSTREAM_TIMEOUT_MS };
    const identity = createGrpcClient(identityV1.IdentityServiceService, config.IDENTITY_ADDR, upstream);
    const subscription = createGrpcClient(
      subscriptionV1.SubscriptionServiceService,
      config.SUBSCRIPTION_ADDR,
      upstream,
    );
    const meetings = createGrpcClient(meetingsV1.MeetingsServiceService, config.MEETINGS_ADDR, upstream);
    const subscriptionHealth = createHealthProbe({
      address: config.SUBSCRIPTION_ADDR,
      server: grpcIdentities.subscription,
      security,
      timeoutMs: Math.min(config.VERIFY_TIMEOUT_MS, 1_000),
    });
    opened.closeWith('grpc clients', () => {
      identity.close();
      subscription.close();
      meetings.close();
      subscriptionHealth.close();
    });

    const nc = await connectNats({ url: config.NATS_URL, name: 'gateway', log });
    opened.closeWith('nats', () => nc.drain());
    const maxPayload = nc.info?.max_payload ?? Infinity;
    if (config.WEBHOOK_MAX_BODY_BYTES + envelopeAllowanceBytes > maxPayload) {
      throw new Error(
        `WEBHOOK_MAX_BODY_BYTES (${config.WEBHOOK_MAX_BODY_BYTES}) leaves no room for the event in NATS max_payload (${maxPayload})`,
      );
    }
    const limits: EventsStreamLimits = {
      maxAgeSeconds: config.EVENTS_STREAM_MAX_AGE_SECONDS,
      maxBytes: config.EVENTS_STREAM_MAX_BYTES,
      duplicateWindowSeconds: config.EVENTS_STREAM_DUPLICATE_WINDOW_SECONDS,
      replicas: config.NATS_STREAM_REPLICAS,
    };
    await ensureEventsStream(nc, names, limits);
    redeclareStreamOnReconnect(nc, () => ensureEventsStream(nc, names, limits), log);

    const verify = createJwtVerifier({
      ...(config.AUTH_JWT_SECRET ? { secret: config.AUTH_JWT_SECRET } : {}),
      ...(config.AUTH_JWKS_URL ? { jwksUrl: config.AUTH_JWKS_URL } : {}),
      ...(config.AUTH_JWT_ISSUER ? { issuer: config.AUTH_JWT_ISSUER } : {}),
      audience: config.AUTH_JWT_AUDIENCE,
      maxTokenAgeSeconds: config.AUTH_JWT_MAX_AGE_SECONDS,
    });
    const verifier = createSubscriptionVerifier({
      client: subscription,
      timeoutMs: config.VERIFY_TIMEOUT_MS,
      metrics,
      transport: config.VERIFY_TRANSPORT,
      log,
    });
    opened.closeWith('verify stream', () => verifier.close());
    const intake = createDeliveryIntake({
      verifier,
      publisher: createEventPublisher({ nc, names, timeoutMs: config.PUBLISH_TIMEOUT_MS, metrics }),
    });
    const connections = createConnectionService({
      identity,
      subscription,
      meetings,
      redirectUri: oauthRedirectUri(config),
    });

    let stopping = false;
    const closing = new AbortController();
    const streamTokens = createStreamTokens({
      ...(config.STREAM_TOKEN_SECRET ? { secret: config.STREAM_TOKEN_SECRET } : {}),
      ttlSeconds: config.STREAM_TOKEN_TTL_SECONDS,
    });
    const tracker = createRequestTracker();
    const readiness = createReadiness({
      stopping: () => stopping,
      natsConnected: () => natsIsConnected(nc),
      subscriptionServing: () => subscriptionHealth.serving(),
    });
    const routers = [
      healthRoutes({ readiness, registry }),
      openApiRoutes(),
      webhookRoutes({ intake, maxBodyBytes: config.WEBHOOK_MAX_BODY_BYTES }),
      connectionRoutes({
        connections,
        verify,
        appUrl: config.APP_URL,
        connectCookie: createConnectCookie(config.PUBLIC_BASE_URL),
      }),
      // Before meetingRoutes: /api/meetings/events is not a meeting id.
      meetingEventsRoutes({
        meetings,
        verify,
        tokens: streamTokens,
        closing: closing.signal,
      }),
      meetingRoutes({ meetings, verify }),
      deliveryRoutes({ meetings, verify }),
    ];
    const app = createApp({
      log,
      metrics,
      tracker,
      stopping: () => stopping,
      corsOrigins: config.CORS_ORIGINS,
      ...(config.DEMO_DIR ? { demoDir: config.DEMO_DIR } : {}),
      routers,
    });

    // Calendly gives up reading after 15 s: a request still arriving after 30 s is not Calendly's.
    const server = createServer(
      { requestTimeout: 30_000, headersTimeout: 20_000, keepAliveTimeout: config.HTTP_KEEP_ALIVE_TIMEOUT_MS },
      app.callback(),
    );
    const httpPort = await listen(server, config.HTTP_PORT, config.HTTP_HOST);
    opened.closeWith('http', () => closeHttp(server, tracker, Math.floor(config.SHUTDOWN_TIMEOUT_MS * 0.8)));
    opened.closeWith('readiness off', async () => {
      stopping = true;
      closing.abort();
      await delay(config.SHUTDOWN_DELAY_MS);
    });
    log.info({ httpPort, eventsStream: names.eventsStream }, 'ready');
    return { ports: { http: httpPort }, routes: servedRoutes(routers) };
  });
}

/**
 * Stops accepting connections, lets in-flight requests finish (their answers ask keep-alive
 * clients to close), and cuts whatever is still open after the grace period.
 */
async function closeHttp(server: Server, tracker: RequestTracker, graceMs: number): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections();
  const grace = new AbortController();
  await Promise.race([tracker.idle(), delay(graceMs, undefined, { signal: grace.signal }).catch(() => undefined)]);
  grace.abort();
  server.closeAllConnections();
  await closed;
}

/** A NATS server that comes back empty (no persistent store) gets its stream declared again. */
function redeclareStreamOnReconnect(nc: NatsConnection, declare: () => Promise<void>, log: Logger): void {
  void (async () => {
    for await (const status of nc.status()) {
      if (status.type !== 'reconnect') continue;
      await declare().catch((error: unknown) => log.error({ err: error }, 'events stream declaration failed'));
    }
  })().catch(() => undefined);
}

if (require.main === module) {
  runService({ service: 'gateway', loadConfig: loadGatewayConfig, start });
}
