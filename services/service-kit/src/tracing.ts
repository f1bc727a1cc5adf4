import type { Instrumentation } from '@opentelemetry/instrumentation';
import type { NodeSDK } from '@opentelemetry/sdk-node';

let sdk: NodeSDK | undefined;

/**
 * True when the standard OTEL_* variables ask for OTLP traces: an endpoint is set and neither
 * OTEL_SDK_DISABLED nor OTEL_TRACES_EXPORTER=none says otherwise. OpenTelemetry's variables are
 * the one exception to "only config.ts reads the environment": they are the SDK's own contract.
 */
export function tracingRequested(env: NodeJS.ProcessEnv = process.env): boolean {
  const endpoint = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || env.OTEL_EXPORTER_OTLP_ENDPOINT;
  if (!endpoint?.trim()) return false;
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true') return false;
  return !(env.OTEL_TRACES_EXPORTER ?? '').split(',').some((name) => name.trim() === 'none');
}

// Probes and scrapes would be most of the spans and tell nothing.
const quietPaths = new Set(['/healthz', '/readyz', '/metrics']);

/**
 * Starts OpenTelemetry tracing for this process when tracingRequested(): spans for HTTP (server
 * and client), every gRPC call, every SQL statement and every fetch, exported over OTLP as the
 * OTEL_* variables say, W3C trace context in and out. Otherwise does nothing and loads none of
 * the SDK, so tracing off costs nothing. Must run before grpc-js, pg, http or koa are loaded:
 * each service imports its `tracing.ts` first thing in main.ts.
 */
export function startTracing(service: string, env: NodeJS.ProcessEnv = process.env): boolean {
  if (sdk || !tracingRequested(env)) return Boolean(sdk);
  /* eslint-disable @typescript-eslint/no-require-imports -- loaded only when tracing is on */
  const { NodeSDK } = require('@opentelemetry/sdk-node') as typeof import('@opentelemetry/sdk-node');
  const { HttpInstrumentation } =
    require('@opentelemetry/instrumentation-http') as typeof import('@opentelemetry/instrumentation-http');
  const { GrpcInstrumentation } =
    require('@opentelemetry/instrumentation-grpc') as typeof import('@opentelemetry/instrumentation-grpc');
  const { PgInstrumentation } =
    require('@opentelemetry/instrumentation-pg') as typeof import('@opentelemetry/instrumentation-pg');
  const { UndiciInstrumentation } =
    require('@opentelemetry/instrumentation-undici') as typeof import('@opentelemetry/instrumentation-undici');
  const { KoaInstrumentation, KoaLayerType } =
    require('@opentelemetry/instrumentation-koa') as typeof import('@opentelemetry/instrumentation-koa');
  /* eslint-enable @typescript-eslint/no-require-imports */
  const instrumentations: Instrumentation[] = [
    new HttpInstrumentation({
      ignoreIncomingRequestHook: (request) => quietPaths.has((request.url ?? '').split('?')[0] ?? ''),
    }),
    // A VerifyDeliveries stream outlives every delivery on it: each item has its own span (traceItem).
    new GrpcInstrumentation({ ignoreGrpcMethods: ['Check', 'Watch', 'ServerReflectionInfo', 'VerifyDeliveries'] }),
    // Statement text only, never its values: parameters carry tokens and personal data.
    new PgInstrumentation({ enhancedDatabaseReporting: false, requireParentSpan: true }),
    new UndiciInstrumentation(),
    // Router spans name the route; one span per middleware would only add noise.
    new KoaInstrumentation({ ignoreLayersType: [KoaLayerType.MIDDLEWARE] }),
  ];
  sdk = new NodeSDK({
    // OTEL_SERVICE_NAME, when set, names the service instead.
    ...(env.OTEL_SERVICE_NAME ? {} : { serviceName: `calsync-${service}` }),
    instrumentations,
    // Traces only: metrics are Prometheus' and logs are pino's.
    metricReaders: [],
    logRecordProcessors: [],
  });
  sdk.start();
  return true;
}

/** True once startTracing started the SDK in this process. */
export function tracingStarted(): boolean {
  return sdk !== undefined;
}

/** Exports the spans still buffered and stops the SDK; a no-op when tracing is off. */
export async function stopTracing(): Promise<void> {
  const running = sdk;
  sdk = undefined;
  await running?.shutdown();
}
