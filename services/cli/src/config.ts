import {
  checkCertificateFiles,
  grpcIdentities,
  grpcSecurityEnv,
  grpcSecurityOf,
  grpcTarget,
  loadConfig,
  withGrpcSecurity,
  type GrpcSecurity,
} from '@calsync/service-kit';
import { z } from 'zod';

/** A peer's address as the services take it: host:port, or a comma-separated list of ip:port. */
const address = () =>
  z
    .string()
    .trim()
    .min(1, 'must not be empty')
    .superRefine((value, ctx) => {
      try {
        grpcTarget(value);
      } catch (error) {
        ctx.addIssue({ code: 'custom', message: (error as Error).message });
      }
    })
    .optional();

const schema = withGrpcSecurity(
  z.object({
    ...grpcSecurityEnv,
    IDENTITY_ADDR: address(),
    SUBSCRIPTION_ADDR: address(),
    MEETINGS_ADDR: address(),
  }),
);

export type CliConfig = z.infer<typeof schema>;

/** Raised for a configuration or argument problem: the command cannot start (exit code 2). */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** The CLI's environment (the same variables as the services', read once). */
export function loadCliConfig(environment: Record<string, string | undefined> = process.env): CliConfig {
  try {
    return loadConfig(schema, environment);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

/**
 * The operator's mutual TLS: the certificate must name calsync-operator, the identity every
 * service's Callers table allows the admin methods to. A service's own certificate (what a pod
 * mounts) is refused here with a clear message rather than by the server.
 */
export function operatorSecurity(config: CliConfig): GrpcSecurity {
  const security = grpcSecurityOf(config);
  if (security.mode === 'plaintext') return security;
  let identity: string;
  try {
    identity = checkCertificateFiles(security).identity;
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  if (identity !== grpcIdentities.operator) {
    throw new UsageError(
      `the certificate ${security.certFile} is for ${identity || 'no common name'}, not ${grpcIdentities.operator}: ` +
        'give the operator certificate in GRPC_TLS_CERT_FILE and GRPC_TLS_KEY_FILE',
    );
  }
  return security;
}

/** A peer's address, or a usage error naming the variable to set. */
export function addressOf(
  config: CliConfig,
  variable: 'IDENTITY_ADDR' | 'SUBSCRIPTION_ADDR' | 'MEETINGS_ADDR',
): string {
  const value = config[variable];
  if (!value) throw new UsageError(`${variable} is required for this command (host:port of the service)`);
  return value;
}
