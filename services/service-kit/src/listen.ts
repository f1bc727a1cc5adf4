import type { Server } from 'node:net';

/**
 * The one way a calsync HTTP server listens: on `port` (0 takes any free port) at `host`,
 * resolving the port it got, rejecting when it cannot (a port in use) with no listener left
 * behind. gRPC servers listen through `createGrpcServer().start()`, which also takes port 0.
 */
export function listen(server: Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      const address = server.address();
      resolve(typeof address === 'object' && address ? address.port : port);
    });
  });
}
