import { createGrpcClient, type GrpcIdentity, type GrpcSecurity } from '@calsync/service-kit';
import type { MethodDefinition } from '@grpc/grpc-js';
import { service as healthService } from 'grpc-health-check';

interface HealthCheckRequest {
  service: string;
}
interface HealthCheckResponse {
  status: 'UNKNOWN' | 'SERVING' | 'NOT_SERVING' | 'SERVICE_UNKNOWN';
}

/** Asks a gRPC server's grpc.health.v1 Check whether it serves (the whole server: service ""). */
export function createHealthProbe(options: {
  address: string;
  server: GrpcIdentity;
  security: GrpcSecurity;
  timeoutMs: number;
}): { serving(): Promise<boolean>; close(): void } {
  const client = createGrpcClient(
    { check: healthService.Check as unknown as MethodDefinition<HealthCheckRequest, HealthCheckResponse> },
    options.address,
    { server: options.server, security: options.security, defaultTimeoutMs: options.timeoutMs },
  );
  return {
    async serving() {
      try {
        return (await client.check({ service: '' })).status === 'SERVING';
      } catch {
        return false;
      }
    },
    close: () => client.close(),
  };
}
