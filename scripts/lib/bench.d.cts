export function printBenchHeader(rootDir: string): { command: string; machine: string; loadAverageBefore: number[] };
export function createCleanup(say?: (message: string) => void): {
  add(stop: () => unknown): void;
  run(): Promise<void>;
};
/** CPU seconds (user + system) a process has used so far, and its resident memory (Linux /proc). */
export function processUsage(pid: number): { cpuSeconds: number; rssMb: number };
/** DATABASE_URL / NATS_URL, or an embedded Postgres and a local nats-server; with databasePrefix, a database of its own. */
export function benchInfra(options: {
  dir: string;
  cleanup: { add(stop: () => unknown): void };
  databasePrefix?: string;
}): Promise<{ databaseUrl: string; natsUrl: string }>;
/** A JSON call to the system under test; throws on a non-2xx answer, null for 204. */
export function json(url: string, options?: { method?: string; body?: unknown; token?: string }): Promise<any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- whatever the route answers
