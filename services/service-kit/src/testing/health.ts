import type { MethodDefinition } from '@grpc/grpc-js';
import { service as healthService } from 'grpc-health-check';
import { createGrpcClient } from '../grpc-client';
import type { GrpcIdentity } from '../grpc-security';
import { testGrpcSecurity } from './certificates';

const check = healthService.Check as unknown as MethodDefinition<{ service: string }, { status: string }>;

/**
 * What `grpc.health.v1.Health/Check` answers for `service` ('' for the whole server) at
 * `address` (host:port), asked as the gateway under this test process's CA.
 */
export async function grpcHealth(address: string, server: GrpcIdentity, service = ''): Promise<string> {
  const client = createGrpcClient({ check }, address, { security: await testGrpcSecurity(), server });
  try {
    return (await client.check({ service }, { timeoutMs: 2_000 })).status;
  } finally {
    client.close();
  }
}
