import * as grpc from '@grpc/grpc-js';

// `any` because request/response types vary per method; the mapped types below restore them.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Definition = Record<string, grpc.MethodDefinition<any, any>>;

/** Per-call options: a deadline in milliseconds (the client's default otherwise) and metadata. */
export interface CallOptions {
  timeoutMs?: number;
  metadata?: grpc.Metadata;
}

/** A client whose every unary method returns a promise and always carries a deadline. */
export type PromiseClient<D> = {
  [K in keyof D]: D[K] extends {
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

/** Creates a promise-based client for a ts-proto service definition at `address` (host:port). */
export function createGrpcClient<D extends Definition>(
  definition: D,
  address: string,
  options: { defaultTimeoutMs?: number; channelOptions?: grpc.ChannelOptions } = {},
): PromiseClient<D> {
  const client = new grpc.Client(address, grpc.credentials.createInsecure(), {
    'grpc.keepalive_time_ms': 30_000,
    // Spread calls over every address the name resolves to (a headless Kubernetes Service answers
    // one per ready pod), instead of pinning them all to the first.
    'grpc.service_config': JSON.stringify({ loadBalancingConfig: [{ round_robin: {} }] }),
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
