import { join } from 'node:path';
import type { GrpcSecurity } from '@calsync/service-kit';
import { createTestDatabase, testNatsUrl, testSubjectPrefix, type TestDatabase } from '@calsync/service-kit/testing';

// CommonJS helpers shared with `npm run dev`, so the tests boot exactly what dev boots.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { startSystem } = require('../lib/system.cjs') as typeof import('../lib/system.cjs');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { signDevJwt } = require('../lib/dev-jwt.cjs') as typeof import('../lib/dev-jwt.cjs');

export const rootDir = join(__dirname, '..', '..');

export interface RunningSystem {
  gateway: string;
  simulator: string;
  jwtSecret: string;
  jwtFor(userId: string): string;
  logLines(): string[];
  /** `host:port` of each gRPC service. */
  addresses: { identity: string; subscription: string; meetings: string };
  /** Mutual TLS presenting `identity`'s certificate (e.g. `calsync-operator`) from the system's CA. */
  grpcSecurity(identity: string): Promise<GrpcSecurity>;
  /** Stops one service's process (e.g. 'gateway'), as when it crashes or is shut down alone. */
  stopService(service: string): Promise<void>;
  stop(): Promise<void>;
}

/** Boots the simulator and every service as real processes on a database and NATS prefix of their own. */
export async function bootSystem(options: {
  label: string;
  extraEnv?: Record<string, Record<string, string>>;
  demoDir?: string;
}): Promise<RunningSystem> {
  const database: TestDatabase = await createTestDatabase(options.label);
  const lines: string[] = [];
  const system = await startSystem({
    rootDir,
    databaseUrl: database.url,
    natsUrl: testNatsUrl(),
    natsSubjectPrefix: testSubjectPrefix(options.label),
    logLevel: 'info',
    extraEnv: options.extraEnv ?? {},
    demoDir: options.demoDir,
    onLine: (service: string, line: string) => {
      lines.push(`${service} ${line}`);
    },
  }).catch(async (error: unknown) => {
    await database.drop();
    throw error;
  });
  return {
    gateway: system.urls.gateway,
    simulator: system.urls.simulator,
    jwtSecret: system.secrets.jwtSecret,
    jwtFor: (userId) => signDevJwt(userId, system.secrets.jwtSecret),
    logLines: () => lines,
    addresses: {
      identity: system.urls.identity,
      subscription: system.urls.subscription,
      meetings: system.urls.meetings,
    },
    grpcSecurity: (identity) => system.grpcSecurity(identity),
    stopService: async (service) => {
      const running = system.processes[service];
      if (!running) throw new Error(`no service named ${service}`);
      await running.stop();
    },
    stop: async () => {
      await system.stop();
      await database.drop();
    },
  };
}

/** JSON over HTTP with an optional bearer token; throws with the body on an unexpected status. */
export async function http<T = unknown>(
  url: string,
  options: {
    method?: string;
    token?: string;
    body?: unknown;
    expect?: number[];
    headers?: Record<string, string>;
  } = {},
): Promise<{ status: number; body: T; headers: Headers }> {
  const response = await fetch(url, {
    method: options.method ?? 'GET',
    redirect: 'manual',
    headers: {
      accept: 'application/json',
      ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
      ...(options.body !== undefined ? { 'content-type': 'application/json' } : {}),
      ...options.headers,
    },
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
  });
  const text = await response.text();
  const body = (text ? JSON.parse(text) : null) as T;
  const expected = options.expect ?? [200, 201, 202, 204];
  if (!expected.includes(response.status)) {
    throw new Error(`${options.method ?? 'GET'} ${url} answered ${response.status}: ${text.slice(0, 500)}`);
  }
  return { status: response.status, body, headers: response.headers };
}

/** Runs `work` over `items` with at most `limit` at a time. */
export async function inBatches<T, R>(
  items: T[],
  limit: number,
  work: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const index = next++;
        results[index] = await work(items[index]!, index);
      }
    }),
  );
  return results;
}

export { eventually } from '@calsync/service-kit/testing';
