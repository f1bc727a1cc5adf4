// Types for system.cjs, for the TypeScript end-to-end tests.
export interface DevSecrets {
  sealingKeys: string;
  applicationSigningKey: string;
  clientId: string;
  clientSecret: string;
  jwtSecret: string;
}
export function devSecrets(): DevSecrets;
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
}): Promise<{
  urls: { gateway: string; simulator: string; demo: string; identity: string; subscription: string; meetings: string };
  processes: Record<string, { stop(): Promise<number | null>; kill(): Promise<void>; lines: string[] }>;
  secrets: DevSecrets;
  stop(): Promise<void>;
}>;
