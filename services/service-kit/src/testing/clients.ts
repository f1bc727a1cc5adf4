import * as grpc from '@grpc/grpc-js';
import { createGrpcClient, serverIdentityOf, type PromiseClient } from '../grpc-client';
import type { Callers } from '../grpc-server';
import { testGrpcCa, testGrpcSecurity } from './certificates';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Definition = Record<string, grpc.MethodDefinition<any, any>>;

/**
 * A client of `definition` at `address` that makes each call as the first identity the
 * service's own table allows for that method, under this test process's CA: tests exercise
 * the service through exactly the doors its callers use.
 */
export async function clientAsAllowedCallers<D extends Definition>(
  definition: D,
  address: string,
  callers: Callers<D>,
  options: { defaultTimeoutMs?: number } = {},
): Promise<PromiseClient<D>> {
  const clients = new Map<string, PromiseClient<D>>();
  for (const identity of new Set(Object.values(callers).map((allowed) => allowed[0]!))) {
    clients.set(
      identity,
      createGrpcClient(definition, address, { ...options, security: await testGrpcSecurity(identity) }),
    );
  }
  const composed: Record<string, unknown> = {
    waitForReady: async (timeoutMs: number) => {
      await Promise.all([...clients.values()].map((client) => client.waitForReady(timeoutMs)));
    },
    close: () => clients.forEach((client) => client.close()),
  };
  for (const method of Object.keys(definition) as (keyof D & string)[]) {
    composed[method] = clients.get(callers[method][0]!)![method];
  }
  return composed as PromiseClient<D>;
}

/** A client of `definition` at `address` presenting `identity`'s certificate from this test process's CA. */
export async function clientAs<D extends Definition>(
  identity: string,
  definition: D,
  address: string,
): Promise<PromiseClient<D>> {
  return createGrpcClient(definition, address, { security: await testGrpcSecurity(identity) });
}

/**
 * Calls `method` over TLS that trusts the server but presents no client certificate, as a
 * stranger on the network would, and resolves the error the server answers with.
 */
export async function callWithoutCertificate<D extends Definition>(
  definition: D,
  address: string,
  method: keyof D & string,
  request: unknown,
): Promise<grpc.ServiceError> {
  const { path, requestSerialize, responseDeserialize } = definition[method]!;
  const client = new grpc.Client(address, (await testGrpcCa()).withoutCertificate(serverIdentityOf(definition)!));
  try {
    return await new Promise<grpc.ServiceError>((resolve, reject) =>
      client.makeUnaryRequest(
        path,
        requestSerialize,
        responseDeserialize,
        request,
        { deadline: Date.now() + 5_000 },
        (error) => (error ? resolve(error) : reject(new Error(`${path} answered a caller without a certificate`))),
      ),
    );
  } finally {
    client.close();
  }
}
