import * as grpc from '@grpc/grpc-js';
import { channelCredentials, type GrpcIdentity, type GrpcSecurity } from './grpc-security';

// `any` because request/response types vary per method; the mapped types below restore them.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Definition = Record<string, grpc.MethodDefinition<any, any>>;

/** Per-call options: a deadline in milliseconds (the client's default otherwise) and metadata. */
export interface CallOptions {
  timeoutMs?: number;
  metadata?: grpc.Metadata;
}

/** Options of a server-streaming call: no deadline unless given; `signal` cancels it. */
export interface StreamCallOptions {
  timeoutMs?: number;
  metadata?: grpc.Metadata;
  signal?: AbortSignal;
}

/** Options of a bidirectional call: long-lived, so no deadline unless given. */
export interface DuplexCallOptions {
  timeoutMs?: number;
  metadata?: grpc.Metadata;
}

/**
 * A client whose every unary method returns a promise and always carries a deadline, whose
 * server-streaming methods return an async iterable of the responses (ending with the call's
 * error, if any), and whose bidirectional methods open grpc-js's duplex call as it is.
 */
export type PromiseClient<D> = {
  [K in keyof D]: D[K] extends {
    requestStream: true;
    responseStream: true;
    requestSerialize(value: infer Req): Buffer;
    responseDeserialize(bytes: Buffer): infer Res;
  }
    ? (options?: DuplexCallOptions) => grpc.ClientDuplexStream<Req, Res>
    : D[K] extends {
          responseStream: true;
          requestSerialize(value: infer Req): Buffer;
          responseDeserialize(bytes: Buffer): infer Res;
        }
      ? (request: Req, options?: StreamCallOptions) => AsyncIterable<Res>
      : D[K] extends {
            requestSerialize(value: infer Req): Buffer;
            responseDeserialize(bytes: Buffer): infer Res;
          }
        ? (request: Req, options?: CallOptions) => Promise<Res>
        : never;
} & {
  /** Waits until the channel is connected or the deadline passes. */
  waitForReady(timeoutMs: number): Promise<void>;
  close(): void;
};

/**
 * How every calsync client reconnects and notices dead peers. grpc-js's own back-off grows to
 * 120 s, so a peer back after a long outage went unnoticed for up to two minutes; here it is
 * retried at most every 2 s (grpc-js adds +/-20 % jitter, so clients do not reconnect in step),
 * and a keepalive ping unanswered for 5 s drops a connection to a peer that vanished silently.
 */
export const reconnectChannelOptions: grpc.ChannelOptions = {
  'grpc.initial_reconnect_backoff_ms': 250,
  'grpc.max_reconnect_backoff_ms': 2_000,
  'grpc.keepalive_time_ms': 10_000,
  'grpc.keepalive_timeout_ms': 5_000,
  'grpc.keepalive_permit_without_calls': 1,
};

const ipPort = /^(\d{1,3}(\.\d{1,3}){3}|\[[0-9a-fA-F:.]+\]):\d+$/;

/**
 * The channel target for `address`: one `host:port` (or any grpc-js target, e.g. a DNS name of a
 * headless Service that answers one address per pod), or a comma-separated list of `ip:port`
 * that calls are spread over.
 */
export function grpcTarget(address: string): string {
  const addresses = address
    .split(',')
    .map((entry) => entry.trim())
    .filter(Boolean);
  if (addresses.length <= 1) return addresses[0] ?? address;
  const bad = addresses.find((entry) => !ipPort.test(entry));
  if (bad)
    throw new Error(
      `"${bad}" in the address list "${address}" is not ip:port; for host names give one DNS name that resolves to every replica`,
    );
  return `${addresses[0]!.startsWith('[') ? 'ipv6' : 'ipv4'}:${addresses.join(',')}`;
}

/**
 * The identity a calsync service's server presents: `calsync.<service>.v1.*` is served by
 * `calsync-<service>`.
 */
export function serverIdentityOf(definition: Definition): string | undefined {
  const [method] = Object.values(definition);
  const service = method && /^\/calsync\.([a-z]+)\.v\d+\./.exec(method.path)?.[1];
  return service ? `calsync-${service}` : undefined;
}

/**
 * Creates a promise-based client for a ts-proto service definition at `address` (see
 * grpcTarget): calls go round-robin over every address, and the channel reconnects within
 * seconds of a peer coming back (reconnectChannelOptions). Under mutual TLS it presents this
 * service's certificate and accepts only the server whose certificate names `server` (by
 * default the identity that serves the definition's package).
 */
export function createGrpcClient<D extends Definition>(
  definition: D,
  address: string,
  options: {
    security: GrpcSecurity;
    server?: GrpcIdentity;
    defaultTimeoutMs?: number;
    channelOptions?: grpc.ChannelOptions;
  },
): PromiseClient<D> {
  const server = options.server ?? serverIdentityOf(definition);
  if (!server) throw new Error(`createGrpcClient: name the server identity for ${address}`);
  const client = new grpc.Client(grpcTarget(address), channelCredentials(options.security, server), {
    ...reconnectChannelOptions,
    // Spread calls over every address the name resolves to (a headless Kubernetes Service answers
    // one per ready pod), instead of pinning them all to the first.
    'grpc.service_config': JSON.stringify({ loadBalancingConfig: [{ round_robin: {} }] }),
    // The name TLS asks for (SNI) and checks: the server's identity, never an IP address.
    ...(options.security.mode === 'mtls' ? { 'grpc.ssl_target_name_override': server } : {}),
    ...options.channelOptions,
  });
  const defaultTimeoutMs = options.defaultTimeoutMs ?? 5_000;
  const methods: Record<string, unknown> = {
    waitForReady: (timeoutMs: number) =>
      new Promise<void>((resolve, reject) =>
        client.waitForReady(Date.now() + timeoutMs, (error) => (error ? reject(error) : resolve())),
      ),
    close: () => client.close(),
  };
  for (const [name, method] of Object.entries(definition)) {
    if (method.requestStream && method.responseStream) {
      methods[name] = (callOptions: DuplexCallOptions = {}) =>
        client.makeBidiStreamRequest(
          method.path,
          method.requestSerialize,
          method.responseDeserialize,
          callOptions.metadata ?? new grpc.Metadata(),
          callOptions.timeoutMs === undefined ? {} : { deadline: Date.now() + callOptions.timeoutMs },
        );
      continue;
    }
    if (method.responseStream) {
      methods[name] = (request: unknown, callOptions: StreamCallOptions = {}) =>
        serverStream(client, method, request, callOptions);
      continue;
    }
    methods[name] = (request: unknown, callOptions: CallOptions = {}) =>
      new Promise((resolve, reject) => {
        client.makeUnaryRequest(
          method.path,
          method.requestSerialize,
          method.responseDeserialize,
          request,
          callOptions.metadata ?? new grpc.Metadata(),
          { deadline: Date.now() + (callOptions.timeoutMs ?? defaultTimeoutMs) },
          (error, response) => (error ? reject(error) : resolve(response)),
        );
      });
  }
  return methods as PromiseClient<D>;
}

async function* serverStream(
  client: grpc.Client,
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  method: grpc.MethodDefinition<any, any>,
  request: unknown,
  options: StreamCallOptions,
): AsyncGenerator<unknown> {
  options.signal?.throwIfAborted();
  const call = client.makeServerStreamRequest(
    method.path,
    method.requestSerialize,
    method.responseDeserialize,
    request,
    options.metadata ?? new grpc.Metadata(),
    options.timeoutMs === undefined ? {} : { deadline: Date.now() + options.timeoutMs },
  );
  const cancel = () => call.cancel();
  options.signal?.addEventListener('abort', cancel, { once: true });
  try {
    for await (const response of call) yield response;
  } finally {
    options.signal?.removeEventListener('abort', cancel);
    // A consumer that stops reading early ends the call too.
    call.cancel();
  }
}
