import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation } from 'grpc-health-check';
import { descriptorSetPath } from '@calsync/proto';
import { Counter, Histogram, type Registry } from 'prom-client';
import { GrpcError } from './errors';
import {
  callerIdentity,
  certificatesLoaded,
  logGrpcSecurity,
  serverCredentials,
  type GrpcIdentity,
  type GrpcSecurity,
} from './grpc-security';
import type { Logger } from './logger';
import { latencyBuckets } from './metrics';
import { isDatabaseUnavailable } from './postgres';

// `any` because request/response types vary per method; the mapped types below restore them.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Definition = Record<string, grpc.MethodDefinition<any, any>>;

/** What a server-streaming handler writes to: resolves once the message is flushed (back-pressure). */
export interface ResponseStream<Res> {
  write(message: Res): Promise<void>;
  /** Aborted when the caller cancels or goes away. */
  readonly signal: AbortSignal;
}

/** What a bidirectional-streaming handler reads from and writes to. */
export interface DuplexStream<Req, Res> extends ResponseStream<Res> {
  /** Calls `listener` with each of the caller's messages as it arrives (no back-pressure). */
  onMessage(listener: (message: Req) => void): void;
  /** Calls `listener` once the caller half-closes: it sends no more. */
  onEnd(listener: () => void): void;
  /**
   * Aborted when the server starts shutting down: finish what is in hand and return. The server's
   * own, shared by every call: a listener added to it must be removed when the call is done.
   */
  readonly draining: AbortSignal;
}

/**
 * A handler per method: a unary one gets the decoded request and resolves the response; a
 * server-streaming one writes to its stream and resolves when the stream is complete; a
 * bidirectional one reads and writes its stream and resolves to end the call OK. Each throws
 * (GrpcError for expected failures) to end the call with a status.
 */
type ServiceImplementation<D> = {
  [K in keyof D]: D[K] extends {
    requestStream: true;
    responseStream: true;
    requestDeserialize(bytes: Buffer): infer Req;
    responseSerialize(value: infer Res): Buffer;
  }
    ? (stream: DuplexStream<Req, Res>, call: grpc.ServerDuplexStream<Req, Res>) => Promise<void>
    : D[K] extends {
          responseStream: true;
          requestDeserialize(bytes: Buffer): infer Req;
          responseSerialize(value: infer Res): Buffer;
        }
      ? (request: Req, stream: ResponseStream<Res>, call: grpc.ServerWritableStream<Req, Res>) => Promise<void>
      : D[K] extends {
            requestDeserialize(bytes: Buffer): infer Req;
            responseSerialize(value: infer Res): Buffer;
          }
        ? (request: Req, call: grpc.ServerUnaryCall<Req, Res>) => Promise<Res>
        : never;
};

/** Who may call each method of a service: the certificate identities allowed, per method. */
export type Callers<D> = { readonly [K in keyof D]: readonly GrpcIdentity[] };

/** A gRPC service with its promise-based implementation, ready for createGrpcServer. */
export interface ServiceBinding {
  name: string;
  definition: grpc.ServiceDefinition;
  implementation: grpc.UntypedServiceImplementation;
  /** Method path -> identities allowed to call it. */
  callers: ReadonlyMap<string, ReadonlySet<string>>;
  /** Tells long-lived (bidirectional) calls that the server is shutting down. */
  drain(): void;
}

/**
 * The status a handler's failure ends its call with: a GrpcError as it is, what the service's
 * `toGrpcError` table maps, UNAVAILABLE for a lost or refused database connection (the caller
 * retries), INTERNAL (logged, message hidden) for anything else. Exported for handlers that
 * answer many items in one call and need each item's status.
 */
export function grpcStatusOf(
  error: unknown,
  context: { method: string; log: Logger; toGrpcError?: (error: unknown) => GrpcError | undefined },
): { code: grpc.status; details: string; metadata?: grpc.Metadata } {
  const mapped = error instanceof GrpcError ? error : context.toGrpcError?.(error);
  if (mapped) {
    const status = mapped.toServiceError();
    return { code: status.code ?? grpc.status.UNKNOWN, details: status.details ?? '', metadata: status.metadata };
  }
  if (isDatabaseUnavailable(error)) {
    context.log.warn({ err: error, method: context.method }, 'database unavailable');
    return { code: grpc.status.UNAVAILABLE, details: 'database unavailable; try again shortly' };
  }
  context.log.error({ err: error, method: context.method }, 'handler failed');
  return { code: grpc.status.INTERNAL, details: 'internal error' };
}

/**
 * Binds a ts-proto service definition to async handlers (unary and server-streaming) and to the
 * table of who may call each method. A thrown GrpcError becomes its status (with its reason);
 * `toGrpcError`, the service's one table of domain errors, maps the rest it knows; a lost or
 * refused database connection becomes UNAVAILABLE, so the caller retries; anything else becomes
 * INTERNAL without leaking the message to the caller.
 */
export function bindService<D extends Definition>(
  name: string,
  definition: D,
  implementation: ServiceImplementation<D>,
  callers: Callers<D>,
  log: Logger,
  options: { toGrpcError?: (error: unknown) => GrpcError | undefined } = {},
): ServiceBinding {
  const handlers: grpc.UntypedServiceImplementation = {};
  const toStatus = (error: unknown, method: string): Partial<grpc.ServiceError> =>
    grpcStatusOf(error, { method, log, ...(options.toGrpcError ? { toGrpcError: options.toGrpcError } : {}) });
  const draining = new AbortController();
  for (const method of Object.keys(definition) as (keyof D & string)[]) {
    const path = definition[method]!.path;
    if (definition[method]!.requestStream && definition[method]!.responseStream) {
      const handle = implementation[method] as (
        stream: DuplexStream<unknown, unknown>,
        call: grpc.ServerDuplexStream<unknown, unknown>,
      ) => Promise<void>;
      handlers[method] = (call: grpc.ServerDuplexStream<unknown, unknown>) => {
        const signal = cancelledWith(call);
        const stream: DuplexStream<unknown, unknown> = {
          onMessage: (listener) => call.on('data', listener),
          onEnd: (listener) => call.once('end', listener),
          signal,
          draining: draining.signal,
          write: (message) => writeTo(call, signal, message),
        };
        endStream(call, signal, handle(stream, call), (error) => toStatus(error, path));
      };
      continue;
    }
    if (definition[method]!.responseStream) {
      const handle = implementation[method] as (
        request: unknown,
        stream: ResponseStream<unknown>,
        call: grpc.ServerWritableStream<unknown, unknown>,
      ) => Promise<void>;
      handlers[method] = (call: grpc.ServerWritableStream<unknown, unknown>) => {
        const signal = cancelledWith(call);
        const stream: ResponseStream<unknown> = {
          signal,
          write: (message) => writeTo(call, signal, message),
        };
        endStream(call, signal, handle(call.request, stream, call), (error) => toStatus(error, path));
      };
      continue;
    }
    const handle = implementation[method] as (
      request: unknown,
      call: grpc.ServerUnaryCall<unknown, unknown>,
    ) => Promise<unknown>;
    handlers[method] = (call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => {
      handle(call.request, call).then(
        (response) => callback(null, response),
        (error: unknown) => callback(toStatus(error, path)),
      );
    };
  }
  const allowed = new Map(
    Object.keys(definition).map((method) => [definition[method]!.path, new Set<string>(callers[method])]),
  );
  return {
    name,
    definition: definition as unknown as grpc.ServiceDefinition,
    implementation: handlers,
    callers: allowed,
    drain: () => draining.abort(),
  };
}

/** Writes one message; resolves once it is flushed (back-pressure), rejects if the call ends first. */
type ServerStreamCall = grpc.ServerWritableStream<unknown, unknown> | grpc.ServerDuplexStream<unknown, unknown>;

/** Aborts once the caller cancels the call or it closes. */
function cancelledWith(call: ServerStreamCall): AbortSignal {
  const cancel = new AbortController();
  call.on('cancelled', () => cancel.abort());
  call.on('close', () => cancel.abort());
  return cancel.signal;
}

/** Ends the call with OK once the handler is done, or with its error's status; a caller gone hears neither. */
function endStream(
  call: ServerStreamCall,
  cancelled: AbortSignal,
  handled: Promise<void>,
  toStatus: (error: unknown) => Partial<grpc.ServiceError>,
): void {
  handled.then(
    () => {
      if (!cancelled.aborted) call.end();
    },
    (error: unknown) => {
      if (!cancelled.aborted) call.emit('error', toStatus(error));
    },
  );
}

function writeTo(call: ServerStreamCall, cancelled: AbortSignal, message: unknown) {
  return new Promise<void>((resolve, reject) => {
    if (cancelled.aborted) return reject(new Error('call cancelled'));
    if (call.write(message)) return resolve();
    const drained = () => {
      cancelled.removeEventListener('abort', aborted);
      resolve();
    };
    const aborted = () => {
      call.off('drain', drained);
      reject(new Error('call cancelled'));
    };
    call.once('drain', drained);
    cancelled.addEventListener('abort', aborted, { once: true });
  });
}

/** Services any authenticated caller may use: health checks and reflection describe, never act. */
const openToEveryCaller = ['/grpc.health.v1.Health/', '/grpc.reflection.'];

/**
 * Refuses a call before it reaches a handler unless the caller's certificate names an identity
 * the method's table allows: no valid certificate is UNAUTHENTICATED, a wrong identity (or a
 * method no table lists) PERMISSION_DENIED. The refusal says nothing about who would be allowed.
 */
function authorizeCallers(bindings: ServiceBinding[]): grpc.ServerInterceptor {
  const allowed = new Map(bindings.flatMap((binding) => [...binding.callers]));
  return (methodDescriptor, call) =>
    new grpc.ServerInterceptingCall(call, {
      start(next) {
        next({
          onReceiveMetadata(metadata, receive) {
            const caller = callerIdentity(call);
            const method = methodDescriptor.path;
            if (!caller) {
              call.sendStatus({
                code: grpc.status.UNAUTHENTICATED,
                details: 'a client certificate signed by the calsync CA is required',
                metadata: new grpc.Metadata(),
              });
            } else if (
              !openToEveryCaller.some((prefix) => method.startsWith(prefix)) &&
              !allowed.get(method)?.has(caller)
            ) {
              call.sendStatus({
                code: grpc.status.PERMISSION_DENIED,
                details: `${caller} may not call ${method}`,
                metadata: new grpc.Metadata(),
              });
            } else {
              receive(metadata);
            }
          },
        });
      },
    });
}

/** Logs every finished call and records it in Prometheus by method and status code. */
function observabilityInterceptor(log: Logger, registry: Registry): grpc.ServerInterceptor {
  const handled = new Counter({
    name: 'grpc_server_handled_total',
    help: 'gRPC calls finished, by method and status code',
    labelNames: ['method', 'code'],
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'grpc_server_handling_seconds',
    help: 'gRPC call duration, by method',
    labelNames: ['method', 'code'],
    buckets: latencyBuckets,
    registers: [registry],
  });
  return (methodDescriptor, call) => {
    const started = process.hrtime.bigint();
    const method = methodDescriptor.path;
    return new grpc.ServerInterceptingCall(call, {
      sendStatus(statusObject, next) {
        const seconds = Number(process.hrtime.bigint() - started) / 1e9;
        const code = grpc.status[statusObject.code] ?? String(statusObject.code);
        handled.inc({ method, code });
        duration.observe({ method, code }, seconds);
        const fields = { method, code, ms: Math.round(seconds * 1e4) / 10 };
        if (statusObject.code === grpc.status.OK) log.debug(fields, 'grpc call');
        else if (statusObject.code === grpc.status.INTERNAL || statusObject.code === grpc.status.UNKNOWN)
          log.error({ ...fields, details: statusObject.details }, 'grpc call failed');
        else log.info({ ...fields, details: statusObject.details }, 'grpc call refused');
        next(statusObject);
      },
    });
  };
}

const healthServiceName = 'grpc.health.v1.Health';

let descriptors: protoLoader.PackageDefinition | undefined;

/** calsync's contracts and grpc.health.v1, loaded once per process. */
function reflectedDescriptors(): protoLoader.PackageDefinition {
  descriptors ??= {
    ...protoLoader.loadFileDescriptorSetFromBuffer(readFileSync(descriptorSetPath)),
    ...protoLoader.loadSync(require.resolve('grpc-health-check/proto/health/v1/health.proto')),
  };
  return descriptors;
}

/**
 * The grpc.health.v1 service name for liveness: SERVING for as long as the process serves at all,
 * so a liveness probe does not restart a pod that is only waiting for Postgres or NATS.
 */
export const livenessHealthName = 'liveness';

export interface GrpcServer {
  /** Binds and starts serving; resolves the bound port. Health stays NOT_SERVING until setServing(true). */
  start(): Promise<number>;
  /** Flips grpc.health.v1 for the server and each service. */
  setServing(serving: boolean): void;
  /** What grpc.health.v1 answers for the whole server: SERVING or not. */
  isServing(): boolean;
  /** Health NOT_SERVING at once, then drains in-flight calls, forcing after the timeout. Idempotent. */
  stop(): Promise<void>;
}

/** A gRPC server with honest health, reflection, logging and metrics, and graceful shutdown. */
export function createGrpcServer(options: {
  services: ServiceBinding[];
  host: string;
  port: number;
  /** Mutual TLS with per-method authorization, or (only when chosen explicitly) plaintext. */
  security: GrpcSecurity;
  log: Logger;
  registry: Registry;
  shutdownTimeoutMs: number;
  /** How long to answer NOT_SERVING before refusing new calls, so load balancers can notice. */
  shutdownDelayMs?: number;
}): GrpcServer {
  const { log } = options;
  const interceptors = [observabilityInterceptor(log, options.registry)];
  // Outermost last: refusals pass through the observability interceptor and are logged and counted.
  if (options.security.mode === 'mtls') interceptors.push(authorizeCallers(options.services));
  const server = new grpc.Server({
    interceptors,
    'grpc.keepalive_permit_without_calls': 1,
  });
  const serviceNames = options.services.map((binding) => binding.name);
  const health = new HealthImplementation({
    ...Object.fromEntries(['', ...serviceNames].map((name) => [name, 'NOT_SERVING' as const])),
    [livenessHealthName]: 'SERVING',
  });
  health.addToServer(server);
  // Reflection tells a caller what this port serves, and nothing about the services next door.
  new ReflectionService(reflectedDescriptors(), { services: [...serviceNames, healthServiceName] }).addToServer(server);
  for (const binding of options.services) server.addService(binding.definition, binding.implementation);

  let stopping: Promise<void> | undefined;
  let current = false;
  const setServing = (serving: boolean) => {
    current = serving && !stopping;
    const status = current ? 'SERVING' : 'NOT_SERVING';
    for (const name of ['', ...serviceNames]) health.setStatus(name, status);
  };

  return {
    start: async () => {
      logGrpcSecurity(options.security, log);
      await certificatesLoaded(options.security);
      return new Promise<number>((resolve, reject) => {
        const { credentials, release } = serverCredentials(options.security);
        server.bindAsync(`${options.host}:${options.port}`, credentials, (error, port) => {
          if (error) {
            release();
            return reject(error);
          }
          log.info({ port }, 'grpc listening');
          resolve(port);
        });
      });
    },
    setServing,
    isServing: () => current,
    stop() {
      stopping ??= new Promise<void>((resolve) => {
        setServing(false);
        setTimeout(() => drain(resolve), options.shutdownDelayMs ?? 0);
      });
      return stopping;
    },
  };

  function drain(resolve: () => void) {
    const force = setTimeout(() => {
      log.warn('grpc drain timed out; forcing');
      server.forceShutdown();
      resolve();
    }, options.shutdownTimeoutMs);
    force.unref();
    // Long-lived streams end themselves once their work in hand is answered, so the drain does
    // not wait for the force timeout; new calls are refused from here on.
    server.tryShutdown(() => {
      clearTimeout(force);
      resolve();
    });
    for (const binding of options.services) binding.drain();
  }
}

/**
 * Keeps a server's health in step with its dependencies: checks now, then every `intervalMs`,
 * and logs each change. A check that throws counts as unhealthy.
 */
export async function watchHealth(options: {
  server: Pick<GrpcServer, 'setServing'>;
  check(): Promise<boolean>;
  log: Logger;
  intervalMs?: number;
}): Promise<{ stop(): void }> {
  let serving: boolean | undefined;
  const update = async () => {
    const healthy = await options.check().catch(() => false);
    if (healthy === serving) return;
    if (serving !== undefined) options.log.warn({ serving: healthy }, 'dependency health changed');
    serving = healthy;
    options.server.setServing(healthy);
  };
  await update();
  const timer = setInterval(() => void update(), options.intervalMs ?? 5_000);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
