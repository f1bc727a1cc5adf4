import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from 'pg';
import type { Simulator } from '@calsync/calendly-sim';
import { approveAuthorize, type SimUser } from '@calsync/calendly-sim/testing';
import { identityV1 } from '@calsync/proto';
import {
  createSealer,
  grpcIdentities,
  reasonOf,
  type Logger,
  type PromiseClient,
  type Sealer,
} from '@calsync/service-kit';
import { captureLogger, clientAsAllowedCallers, testGrpcEnv, waitFor } from '@calsync/service-kit/testing';
import { loadIdentityConfig } from '../src/config';
import { secretContext, type SecretColumn } from '../src/connections/secret-context';
import { identityCallers } from '../src/grpc/identity-service';
import { start, type IdentityApp } from '../src/main';

/**
 * identity's test kit, `@calsync/identity/testing`: identity booted in the test's process with
 * its production wiring, and what tests read of it. Test-only: run from source by jest, never
 * built into dist/.
 */

export const clientId = 'calsync-dev-client';
export const clientSecret = 'calsync-dev-secret';
export const redirectUri = 'https://app.example.com/calendly/callback';

/** A compiled entry point of identity (`main.js`, `rotate-keys.js`), for tests that run real processes. */
export function builtEntry(name: string): string {
  const entry = join(__dirname, '..', 'dist', name);
  if (!existsSync(entry))
    throw new Error(`${entry} is missing: build first (npx tsc -p services/identity/tsconfig.build.json)`);
  return entry;
}

/** Runs a compiled command of identity to its end, returning its exit code and output lines. */
export function runCommand(
  name: string,
  env: Record<string, string>,
): Promise<{ code: number | null; lines: string[] }> {
  const child = spawn(process.execPath, [builtEntry(name)], {
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, lines: output.split('\n').filter(Boolean) }));
  });
}

/** Sums a Prometheus metric over several processes' /metrics, keeping the samples that carry `labels`. */
export async function metricSum(ports: number[], name: string, labels: Record<string, string> = {}): Promise<number> {
  let sum = 0;
  for (const port of ports) {
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    for (const line of text.split('\n')) {
      const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
      if (!match || match[1] !== name) continue;
      const sample = match[2] ?? '';
      if (Object.entries(labels).every(([key, value]) => sample.includes(`${key}="${value}"`))) sum += Number(match[3]);
    }
  }
  return sum;
}

export type IdentityClient = PromiseClient<typeof identityV1.IdentityServiceService>;

/** A fresh AES-256 key in SEALING_KEYS' form. */
export const newSealingKey = (): string => randomBytes(32).toString('base64');

/** The environment identity runs with in a test: its own database, the simulator, ports 0, the test CA. */
export async function identityEnv(options: {
  databaseUrl: string;
  sim: Simulator;
  keys: Record<string, string>;
  activeKeyId: string;
  extra?: Record<string, string>;
}): Promise<Record<string, string>> {
  return {
    ...(await testGrpcEnv(grpcIdentities.identity)),
    LOG_LEVEL: 'debug',
    DATABASE_URL: options.databaseUrl,
    GRPC_HOST: '127.0.0.1',
    GRPC_PORT: '0',
    METRICS_PORT: '0',
    SEALING_KEYS: Object.entries(options.keys)
      .map(([id, key]) => `${id}=${key}`)
      .join(','),
    SEALING_ACTIVE_KEY_ID: options.activeKeyId,
    CALENDLY_API_URL: options.sim.url,
    CALENDLY_AUTH_URL: options.sim.url,
    CALENDLY_CLIENT_ID: options.sim.settings.clientId,
    CALENDLY_CLIENT_SECRET: options.sim.settings.clientSecret,
    CALENDLY_MAX_RETRY_DELAY_MS: '2000',
    SHUTDOWN_TIMEOUT_MS: '5000',
    ...options.extra,
  };
}

/** identity running in the test's process, and a client of it allowed every method. */
export interface TestIdentity {
  app: IdentityApp;
  /** `host:port` of its gRPC server, for another service's IDENTITY_ADDR. */
  address: string;
  client: IdentityClient;
  /** The environment it was started with (a replica or a command can reuse it). */
  env: Record<string, string>;
  stop(): Promise<void>;
}

/**
 * Boots identity in this process exactly as production wires it (`start(loadIdentityConfig(env))`),
 * on `databaseUrl`, with the simulator as Calendly; one fresh sealing key unless `keys` are given.
 */
export async function startTestIdentity(options: {
  databaseUrl: string;
  sim: Simulator;
  keys?: Record<string, string>;
  activeKeyId?: string;
  env?: Record<string, string>;
  log?: Logger;
}): Promise<TestIdentity> {
  const keys = options.keys ?? { k1: newSealingKey() };
  const env = await identityEnv({
    databaseUrl: options.databaseUrl,
    sim: options.sim,
    keys,
    activeKeyId: options.activeKeyId ?? Object.keys(keys)[0]!,
    extra: options.env,
  });
  const app = await start(loadIdentityConfig(env), { log: options.log ?? captureLogger('identity', 'silent').log });
  const address = `127.0.0.1:${app.ports.grpc}`;
  const client = await clientAsAllowedCallers(identityV1.IdentityServiceService, address, identityCallers).catch(
    async (error: unknown) => {
      await app.stop();
      throw error;
    },
  );
  return {
    app,
    address,
    client,
    env,
    async stop() {
      client.close();
      await app.stop();
    },
  };
}

export const sealerFor = (keys: Record<string, string>, activeKeyId: string): Sealer =>
  createSealer({
    keys: new Map(Object.entries(keys).map(([id, key]) => [id, Buffer.from(key, 'base64')])),
    activeKeyId,
  });

/** Asks Calendly (the simulator) who a token belongs to: the user's URI, or the HTTP status. */
export async function whoIs(sim: Simulator, token: string): Promise<string | number> {
  const response = await fetch(`${sim.url}/users/me`, { headers: { authorization: `Bearer ${token}` } });
  if (!response.ok) return response.status;
  return ((await response.json()) as { resource: { uri: string } }).resource.uri;
}

async function oauthForm(sim: Simulator, path: string, token: string): Promise<Response> {
  return fetch(`${sim.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ client_id: clientId, client_secret: clientSecret, token }).toString(),
  });
}

export async function isActiveAtCalendly(sim: Simulator, token: string): Promise<boolean> {
  return ((await (await oauthForm(sim, '/oauth/introspect', token)).json()) as { active: boolean }).active;
}

export async function revokeAtCalendly(sim: Simulator, token: string): Promise<void> {
  const response = await oauthForm(sim, '/oauth/revoke', token);
  if (!response.ok) throw new Error(`revoke answered ${response.status}`);
}

export async function withDatabase<T>(url: string, work: (client: Client) => Promise<T>): Promise<T> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

const sealedColumns: Record<string, SecretColumn> = {
  access_token_sealed: 'access_token',
  refresh_token_sealed: 'refresh_token',
  code_verifier_sealed: 'code_verifier',
};

/** Every secret identity stores now, opened: what the plaintext scan must never find. */
export async function openStoredSecrets(url: string, sealer: Sealer): Promise<Map<string, Record<string, string>>> {
  return withDatabase(url, async (client) => {
    const byUser = new Map<string, Record<string, string>>();
    for (const table of ['connections', 'oauth_states']) {
      const { rows } = await client.query<Record<string, string | null>>(`SELECT * FROM identity.${table}`);
      for (const row of rows) {
        const userId = row.user_id!;
        const opened = byUser.get(userId) ?? {};
        for (const [column, secret] of Object.entries(sealedColumns)) {
          const value = row[column];
          if (value) opened[secret] = sealer.open(value, secretContext(secret, userId));
        }
        byUser.set(userId, opened);
      }
    }
    return byUser;
  });
}

/** The refresh token identity holds for a user, opened with the test's copy of the keys. */
export async function storedRefreshToken(url: string, sealer: Sealer, userId: string): Promise<string> {
  const token = (await openStoredSecrets(url, sealer)).get(userId)?.refresh_token;
  if (!token) throw new Error(`no refresh token stored for ${userId}`);
  return token;
}

/**
 * Fails when any secret (or anything shaped like Calendly's JWT tokens) appears in any row of any
 * table of the identity schema, or in any log line.
 */
export async function expectNoPlaintextSecrets(options: {
  databaseUrl: string;
  lines: string[];
  secrets: Iterable<string>;
}): Promise<{ rows: number; lines: number; secrets: number }> {
  const secrets = [...new Set(options.secrets)].filter((secret) => secret.length >= 16);
  const texts = await withDatabase(options.databaseUrl, async (client) => {
    const { rows: tables } = await client.query<{ table_name: string }>(
      "SELECT table_name FROM information_schema.tables WHERE table_schema = 'identity' AND table_type = 'BASE TABLE'",
    );
    const all: string[] = [];
    for (const { table_name: table } of tables) {
      const { rows } = await client.query<{ row: string }>(
        `SELECT row_to_json(t)::text AS row FROM identity."${table}" t`,
      );
      all.push(...rows.map((row) => `${table}: ${row.row}`));
    }
    return all;
  });
  // Pieces too, so a truncated or sliced secret is caught as well as a whole one.
  const fragments = secrets.flatMap((secret) => {
    if (secret.length < 40) return [secret];
    const middle = Math.floor(secret.length / 2) - 10;
    return [secret.slice(0, 20), secret.slice(middle, middle + 20), secret.slice(-20)];
  });
  const jwtHeader = /eyJ[A-Za-z0-9_-]{10,}\.eyJ/;
  for (const text of [...texts, ...options.lines]) {
    for (const fragment of fragments)
      if (text.includes(fragment)) throw new Error(`plaintext secret found in: ${text.slice(0, 300)}`);
    if (jwtHeader.test(text)) throw new Error(`a JWT-shaped token found in: ${text.slice(0, 300)}`);
  }
  return { rows: texts.length, lines: options.lines.length, secrets: secrets.length };
}

/**
 * Waits until identity's stored access token for `userId` has expired by identity's own clock,
 * so the next GetAccessToken must refresh (instead of sleeping past a short token lifetime).
 */
export function accessTokenExpired(url: string, userId: string): Promise<true> {
  return waitFor(
    () =>
      withDatabase(url, async (client) => {
        const { rows } = await client.query<{ expires: Date | null }>(
          'SELECT access_token_expires_at AS expires FROM identity.connections WHERE user_id = $1',
          [userId],
        );
        const expires = rows[0]?.expires;
        return expires !== undefined && expires !== null && expires.getTime() < Date.now();
      }),
    { what: `the access token of ${userId} to expire`, intervalMs: 25 },
  );
}

/** The gRPC status code and calsync reason of a failed call. */
export async function failureOf(call: Promise<unknown>): Promise<{ code: number; reason?: string; details: string }> {
  try {
    await call;
  } catch (error) {
    const { code, details } = error as { code: number; details: string };
    return { code, reason: reasonOf(error), details };
  }
  throw new Error('the call succeeded but was expected to fail');
}

/**
 * The whole OAuth connect as the gateway and the browser drive it: begin, approve at the
 * simulator as `simUser`, complete. `onSecret` sees the state and code (to prove none leaks).
 */
export async function connectWithOAuth(
  identity: IdentityClient,
  userId: string,
  simUser: SimUser,
  onSecret: (secret: string) => void = () => {},
): Promise<identityV1.CompleteConnectResponse> {
  const begun = await identity.beginConnect({ userId, redirectUri });
  onSecret(begun.state);
  const { code, state } = await approveAuthorize(begun.authorizeUrl, simUser);
  onSecret(code);
  if (state !== begun.state) throw new Error('the simulator redirected back with another state');
  return identity.completeConnect({ state, code });
}
