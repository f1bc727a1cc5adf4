import { status as grpcStatus } from '@grpc/grpc-js';
import { trace } from '@opentelemetry/api';
import pino, { type Logger, type LoggerOptions } from 'pino';

export type { Logger } from 'pino';

/** Field names whose values are secrets wherever they appear in a log line. */
const secretFields = [
  'token',
  'accessToken',
  'access_token',
  'refreshToken',
  'refresh_token',
  'personalAccessToken',
  'personal_access_token',
  'signingKey',
  'signing_key',
  'clientSecret',
  'client_secret',
  'secret',
  'password',
  'authorization',
  'code_verifier',
  'codeVerifier',
  '["calendly-webhook-signature"]',
  'signatureHeader',
  'signature_header',
];

/** The pino redaction paths: each secret field at the top level and one or two levels down. */
export const redactedPaths: string[] = secretFields.flatMap((field) => {
  const joined = field.startsWith('[') ? field : `.${field}`;
  return [field, `*${joined}`, `*.*${joined}`];
});

/**
 * gRPC codes a server answers on purpose (the caller's input, rights or state), as opposed to
 * INTERNAL, UNKNOWN, DATA_LOSS, UNAVAILABLE or DEADLINE_EXCEEDED, which say something broke.
 */
const refusalCodes = new Set([
  grpcStatus.CANCELLED,
  grpcStatus.INVALID_ARGUMENT,
  grpcStatus.NOT_FOUND,
  grpcStatus.ALREADY_EXISTS,
  grpcStatus.PERMISSION_DENIED,
  grpcStatus.RESOURCE_EXHAUSTED,
  grpcStatus.FAILED_PRECONDITION,
  grpcStatus.ABORTED,
  grpcStatus.OUT_OF_RANGE,
  grpcStatus.UNAUTHENTICATED,
]);

/**
 * True for an error that is an answer, not a fault: a gRPC refusal, or an HTTP 4xx (ours or
 * Calendly's). Its stack only says where the answer was read, so the log line leaves it out.
 */
export function isExpectedRefusal(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const { code, status } = error as { code?: unknown; status?: unknown };
  if (typeof code === 'number' && refusalCodes.has(code)) return true;
  return typeof status === 'number' && status >= 400 && status < 500;
}

/** `err` in a log line: an expected refusal as one short object, anything else with its stack and causes. */
export function serializeError(error: unknown): unknown {
  if (!(error instanceof Error)) return error;
  if (!isExpectedRefusal(error)) return pino.stdSerializers.err(error);
  const { code, status } = error as { code?: unknown; status?: unknown };
  return {
    type: error.name,
    message: error.message,
    ...(typeof code === 'number' ? { code: grpcStatus[code] ?? code } : {}),
    ...(typeof status === 'number' ? { status } : {}),
  };
}

/** The active span's ids, for every log line written inside one; nothing when tracing is off. */
export function activeTraceFields(): { trace_id?: string; span_id?: string } {
  const spanContext = trace.getActiveSpan()?.spanContext();
  if (!spanContext || !trace.isSpanContextValid(spanContext)) return {};
  return { trace_id: spanContext.traceId, span_id: spanContext.spanId };
}

/**
 * The service's one logger: JSON lines, secrets redacted, the trace id on lines written inside
 * a span. Create once in main and pass down.
 */
export function createLogger(options: {
  service: string;
  level?: string;
  destination?: pino.DestinationStream;
}): Logger {
  const config: LoggerOptions = {
    level: options.level ?? 'info',
    base: { service: options.service },
    redact: { paths: redactedPaths, censor: '[redacted]' },
    serializers: { err: serializeError },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    mixin: activeTraceFields,
  };
  return pino(config, options.destination ?? standardOutput());
}

/**
 * stdout written synchronously, as Node itself writes to a pipe on Linux. pino's default
 * asynchronous stream leaves a line in flight when the service exits; its exit hook then
 * flushes that line with a loop that retries EPIPE forever, so a service whose parent died
 * (its stdout pipe broken) hung on SIGTERM. Written synchronously, the first EPIPE is seen at
 * once and pino stops logging instead of retrying.
 */
function standardOutput(): pino.DestinationStream {
  return pino.destination({ dest: 1, sync: true });
}
