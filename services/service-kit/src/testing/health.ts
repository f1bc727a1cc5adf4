import * as grpc from '@grpc/grpc-js';
import { service as healthService } from 'grpc-health-check';

/** What `grpc.health.v1.Health/Check` answers for `service` ('' for the whole server) at `address` (host:port). */
export function grpcHealth(address: string, service = ''): Promise<string> {
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  return new Promise((resolve, reject) =>
    client.makeUnaryRequest(
      '/grpc.health.v1.Health/Check',
      (value: { service: string }) => healthService.Check!.requestSerialize(value),
      (bytes: Buffer) => healthService.Check!.responseDeserialize(bytes) as { status: string },
      { service },
      { deadline: Date.now() + 2_000 },
      (error, response) => {
        client.close();
        if (error) reject(error);
        else resolve(response!.status);
      },
    ),
  );
}
