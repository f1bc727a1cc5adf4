import { status as grpcStatus } from '@grpc/grpc-js';
import { trace } from '@opentelemetry/api';
import pino, { type Logger, type LoggerOptions } from 'pino';

export type { Logger } from 'pino';

/** Field names whose values are secrets wherever they appear in a log line. */
const secretFields = new Set([
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
  'calendly-webhook-signature',
  'signatureHeader',
  'signature_header',
]);

const censor = '[redacted]';

/**
 * `value` with every secret field (secretFields) `depth` levels down or less replaced by
 * "[redacted]": a line's own fields, their fields and theirs. Objects are copied only where
 * something is replaced, so the caller's objects never change and a line without secrets costs
 * one look at each key. Errors are left to serializeError, which redacts what it takes from them.
 */
export function redactSecrets<T>(value: T, depth = 3): T {
  if (depth <= 0 || typeof value !== 'object' || value === null) return value;
  if (value instanceof Error || value instanceof Date || ArrayBuffer.isView(value)) return value;
  if (Array.isArray(value)) {
    let copy: unknown[] | undefined;
    for (let i = 0; i < value.length; i++) {
      const item: unknown = value[i];
      const redacted = redactSecrets(item, depth - 1);
      if (redacted !== item) (copy ??= value.slice())[i] = redacted;
    }
    return (copy ?? value) as T;
  }
  let copy: Record<string, unknown> | undefined;
  const fields = value as Record<string, unknown>;
  for (const key of Object.keys(fields)) {
    const field = fields[key];
    const redacted = secretFields.has(key) && field !== undefined ? censor : redactSecrets(field, depth - 1);
    if (redacted !== field) (copy ??= { ...fields })[key] = redacted;
  }
  return (copy ?? value) as T;
}

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
  if (!(error instanceof Error)) return redactSecrets(error, 2);
  // What pino copies from an error (its own fields, its causes) is redacted like the line around it.
  if (!isExpectedRefusal(error)) return redactSecrets(pino.stdSerializers.err(error), 2);
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
 * a span. Create once in main and pass down. Secrets are redacted from a line's fields (and a
 * child's bindings) by redactSecrets, not by pino's `redact` paths: those cost about 85 µs of CPU
 * per line with wildcards (every path parsed again for every top-level field), a ninth of a
 * delivery's cost at the gateway. Pass values as fields, never formatted into the message.
 */
export function createLogger(options: {
  service: string;
  level?: string;
  destination?: pino.DestinationStream;
}): Logger {
  const config: LoggerOptions = {
    level: options.level ?? 'info',
    base: { service: options.service },
    serializers: { err: serializeError },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: {
      level: (label) => ({ level: label }),
      bindings: (bindings) => redactSecrets(bindings),
      log: (fields) => redactSecrets(fields),
    },
    mixin: activeTraceFields,
  };
  const logger = pino(config, options.destination ?? standardOutput());
  // pino hands children a bindings formatter of its own, so their bindings are redacted here;
  // every child (and a child's child) inherits this method from the root.
  const child = logger.child;
  logger.child = function redactedChild(this: Logger, bindings, childOptions) {
    return child.call(this, redactSecrets(bindings), childOptions);
  } as typeof logger.child;
  return logger;
}

/** Lines are held until this many bytes are waiting, then written in one system call. */
const stdoutBatchBytes = 8 * 1024;
/** No line waits longer than this for the rest of its batch (a quiet service still logs promptly). */
const stdoutBatchMaxWaitMs = 100;

let sharedStdout: pino.DestinationStream | undefined;

/**
 * The process's one stdout for every logger it makes (lines keep their order across loggers).
 * Written synchronously, as Node itself writes to a pipe on Linux: pino's asynchronous stream
 * leaves a line in flight when the service exits and its exit hook retries EPIPE forever, so a
 * service whose parent died hung on SIGTERM; written synchronously, the first EPIPE is seen at
 * once and pino stops logging instead of retrying.
 *
 * Written in batches: one write system call per line was 5% of a delivery's CPU at the gateway
 * (its access line). Lines wait until 8 KiB are held or for at most 100 ms; a warning or error
 * goes out at once with whatever is held before it, and so does everything still held when the
 * process exits (process.exit, a fatal error) or when a caller asks (`log.flush()`, which
 * runService does once the service is ready). A SIGKILL loses at most the last 100 ms of info lines.
 */
function standardOutput(): pino.DestinationStream {
  return (sharedStdout ??= batchedOutput(1));
}

/** A destination writing to `fd` in batches, as described at standardOutput; exported for its tests. */
export function batchedOutput(fd: number): pino.DestinationStream & { flush(callback?: () => void): void } {
  const stdout = pino.destination({ dest: fd, sync: true, minLength: stdoutBatchBytes });
  let held = false;
  // Armed by the first line held, so a quiet process is never woken for its log.
  let timer: NodeJS.Timeout | undefined;
  const flushHeld = () => {
    clearTimeout(timer);
    timer = undefined;
    if (!held) return;
    held = false;
    stdout.flush();
  };
  process.once('exit', flushHeld);
  const destination = {
    // pino sets lastLevel before each write when the stream asks for it.
    [Symbol.for('pino.metadata')]: true,
    lastLevel: 0,
    write(line: string) {
      stdout.write(line);
      held = true;
      if (destination.lastLevel >= pino.levels.values.warn!) flushHeld();
      else timer ??= setTimeout(flushHeld, stdoutBatchMaxWaitMs).unref();
    },
    // Written before the callback is called (the write is synchronous); a broken pipe does
    // not keep the callback waiting for a drain that never comes.
    flush(callback?: () => void) {
      flushHeld();
      callback?.();
    },
  };
  return destination;
}
