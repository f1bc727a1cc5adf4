// Types for system.cjs, for the TypeScript end-to-end tests.
export interface DevSecrets {
  sealingKeys: string;
  applicationSigningKey: string;
  clientId: string;
  clientSecret: string;
  jwtSecret: string;
}
export function devSecrets(): DevSecrets;
export interface RunningService {
  child: import('node:child_process').ChildProcess;
  stop(): Promise<number | null>;
  kill(): Promise<void>;
  lines: string[];
}
export function startSystem(options: {
  rootDir: string;
  databaseUrl: string;
  natsUrl: string;
  gatewayPort?: number;
  simPort?: number;
  host?: string;
  secrets?: DevSecrets;
  natsSubjectPrefix?: string;
  demoDir?: string;
  logLevel?: string;
  extraEnv?: Record<string, Record<string, string>>;
  onLine?: (service: string, line: string) => void;
  maxLines?: number;
  /** Where the throwaway CA and the services' certificates are written; a temporary folder by default. */
  certsDir?: string;
  /** Node options per service (e.g. `--cpu-prof`), before its entry. */
  nodeArgs?: Record<string, string[]>;
}): Promise<{
  urls: { gateway: string; simulator: string; demo: string; identity: string; subscription: string; meetings: string };
  processes: Record<string, RunningService>;
  secrets: DevSecrets;
  /** The throwaway CA (`ca.crt`) and each identity's `tls.crt`/`tls.key` under `calsync-<service>/`. */
  certsDir: string;
  /** Mutual TLS presenting `identity`'s certificate from the same CA (e.g. `calsync-operator`). */
  grpcSecurity(identity: string): Promise<import('@calsync/service-kit').GrpcSecurity>;
  /** Starts a service again on the same ports and settings, after SIGKILL with `kill`, else SIGTERM. */
  restart(service: string, options?: { kill?: boolean }): Promise<RunningService>;
  stop(): Promise<void>;
}>;
