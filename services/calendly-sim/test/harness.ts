import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import { listen } from '@calsync/service-kit';
import { startSimulator, type Simulator, type SimulatorSettings, type StartOptions } from '../src/index';

/**
 * The simulator's test kit, `@calsync/calendly-sim/testing`: what every test that stands the
 * simulator in for Calendly needs (its control API, its users, its OAuth approval), defined
 * once. Test-only: run from source by jest, never built into dist/.
 */

/** A Calendly user of the simulator, as its control API (`POST /_sim/users`) returns it. */
export interface SimUser {
  uri: string;
  uuid: string;
  name: string;
  email: string;
  organization: string;
  role: string;
  plan: string;
  personal_access_token: string;
}

/** Where the simulator listens: its base URL, or the running simulator itself. */
export type SimAddress = string | Pick<Simulator, 'url'>;

const baseUrl = (sim: SimAddress) => (typeof sim === 'string' ? sim : sim.url);

/** One call to the simulator's control API (a path under `/_sim/`) that must succeed; its JSON answer. */
export async function simControl<T = Record<string, unknown>>(
  sim: SimAddress,
  method: string,
  path: string,
  body?: unknown,
): Promise<T> {
  const response = await fetch(`${baseUrl(sim)}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`simulator ${method} ${path} answered ${response.status}: ${text}`);
  return (text ? JSON.parse(text) : undefined) as T;
}

let usersMade = 0;

/** A new simulated Calendly user (a unique email unless one is given). */
export function createSimUser(sim: SimAddress, input: Record<string, unknown> = {}): Promise<SimUser> {
  usersMade += 1;
  const name = typeof input.name === 'string' ? input.name : 'Ada Lovelace';
  const local = `${name.replace(/[^a-z0-9]/gi, '').toLowerCase() || 'user'}-${usersMade}-${randomBytes(3).toString('hex')}`;
  return simControl<SimUser>(sim, 'POST', '/_sim/users', { name, email: `${local}@example.com`, ...input });
}

/**
 * Plays the user's browser at the simulator's authorize page: approves `authorizeUrl` as
 * `user` and reads the redirect back (the `code` and `state` for the client's callback).
 */
export async function approveAuthorize(
  authorizeUrl: string | URL,
  user: Pick<SimUser, 'uuid'>,
): Promise<{ code: string; state: string; location: URL }> {
  const url = new URL(authorizeUrl);
  url.searchParams.set('sim_user', user.uuid);
  const response = await fetch(url, { redirect: 'manual' });
  const location = response.headers.get('location');
  if (response.status !== 302 || !location) throw new Error(`authorize answered ${response.status}`);
  const back = new URL(location);
  const code = back.searchParams.get('code');
  const state = back.searchParams.get('state');
  if (!code || !state) throw new Error(`authorize redirected without a code: ${back.searchParams.get('error')}`);
  return { code, state, location: back };
}

/** An HTTP answer as a client sees it. */
export interface Answer<T = Record<string, unknown>> {
  status: number;
  body: T;
  text: string;
  headers: Headers;
}

export interface CallOptions {
  token?: string;
  body?: unknown;
  form?: Record<string, string>;
  basic?: { id: string; secret: string };
}

/** A simulator started in-process, driven only over HTTP. */
export interface SimHarness {
  sim: Simulator;
  call<T = Record<string, unknown>>(method: string, path: string, options?: CallOptions): Promise<Answer<T>>;
  /** A control API call that must succeed. */
  control<T = Record<string, unknown>>(method: string, path: string, body?: unknown): Promise<T>;
  createUser(input: Record<string, unknown>): Promise<SimUser>;
  stop(): Promise<void>;
}

export async function startHarness(
  settings?: Partial<SimulatorSettings>,
  start: Pick<StartOptions, 'port' | 'stateFile'> = {},
): Promise<SimHarness> {
  const sim = await startSimulator({ settings, ...start });
  const call = async <T>(method: string, path: string, options: CallOptions = {}): Promise<Answer<T>> => {
    const headers: Record<string, string> = {};
    let body: string | undefined;
    if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
    if (options.basic) {
      headers.authorization = `Basic ${Buffer.from(`${options.basic.id}:${options.basic.secret}`).toString('base64')}`;
    }
    if (options.form) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      body = new URLSearchParams(options.form).toString();
    } else if (options.body !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(options.body);
    }
    const url = path.startsWith('http') ? path : `${sim.url}${path}`;
    const response = await fetch(url, { method, headers, body, redirect: 'manual' });
    const text = await response.text();
    let parsed: unknown = {};
    try {
      parsed = text ? JSON.parse(text) : {};
    } catch {
      parsed = {};
    }
    return { status: response.status, body: parsed as T, text, headers: response.headers };
  };
  return {
    sim,
    call,
    control: (method, path, body) => simControl(sim, method, path, body),
    createUser: (input) => createSimUser(sim, input),
    stop: () => sim.stop(),
  };
}

/** One request the receiver got, with its body exactly as sent. */
export interface Received {
  path: string;
  headers: IncomingHttpHeaders;
  raw: string;
  at: number;
}

/** A bare callback server answering each request with `status(path)` (200 unless told otherwise). */
export async function startReceiver(status: (path: string) => number = () => 200) {
  const received: Received[] = [];
  let answer = status;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      received.push({
        path: req.url ?? '',
        headers: req.headers,
        raw: Buffer.concat(chunks).toString('utf8'),
        at: Date.now(),
      });
      const code = answer(req.url ?? '');
      if (code >= 300 && code < 400) res.setHeader('location', 'http://127.0.0.1:1/elsewhere');
      res.writeHead(code).end('ok');
    });
  });
  const url = `http://127.0.0.1:${await listen(server, 0, '127.0.0.1')}`;
  return {
    url,
    received,
    at: (path: string) => received.filter((r) => r.path === path),
    respond(next: (path: string) => number) {
      answer = next;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/**
 * Checks `Calendly-Webhook-Signature: t=..,v1=..` as CALENDLY.md documents it, independently of the
 * simulator's code: v1 = hex(HMAC-SHA256(key, t + "." + raw body)), compared in constant time.
 */
export function verifiesWith(header: string | string[] | undefined, raw: string, key: string): boolean {
  if (typeof header !== 'string') return false;
  const parts = new Map(header.split(',').map((part) => part.split('=', 2) as [string, string]));
  const t = parts.get('t');
  const v1 = parts.get('v1');
  if (!t || !v1 || !/^[0-9a-f]{64}$/.test(v1)) return false;
  const expected = createHmac('sha256', key).update(`${t}.${raw}`).digest();
  return timingSafeEqual(expected, Buffer.from(v1, 'hex'));
}

export function signatureTime(header: string | string[] | undefined): number {
  return Number(/t=(\d+)/.exec(String(header))?.[1]);
}

export function pkcePair(): { verifier: string; challenge: string } {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
}

export const devClient = { id: 'calsync-dev-client', secret: 'calsync-dev-secret' };

/**
 * A client's authorize step with PKCE (S256), approved at the simulator as `user`: the code and
 * the verifier the client then exchanges at /oauth/token.
 */
export async function authorizeWithPkce(
  sim: SimAddress,
  user: Pick<SimUser, 'uuid'>,
  options: { redirectUri: string; clientId?: string; state?: string; scope?: string },
): Promise<{ code: string; verifier: string }> {
  const { verifier, challenge } = pkcePair();
  const query = new URLSearchParams({
    client_id: options.clientId ?? devClient.id,
    response_type: 'code',
    redirect_uri: options.redirectUri,
    state: options.state ?? 'st',
    code_challenge: challenge,
    code_challenge_method: 'S256',
    ...(options.scope ? { scope: options.scope } : {}),
  });
  const { code } = await approveAuthorize(`${baseUrl(sim)}/oauth/authorize?${query.toString()}`, user);
  return { code, verifier };
}

/** The whole authorization-code dance for one user: authorize (auto-approved), then token. */
export async function connectWithOAuth(harness: SimHarness, user: SimUser, scope?: string) {
  const redirectUri = 'http://app.test/callback';
  const { code, verifier } = await authorizeWithPkce(harness.sim, user, { redirectUri, scope });
  const token = await harness.call<{ access_token: string; refresh_token: string }>('POST', '/oauth/token', {
    basic: devClient,
    form: { grant_type: 'authorization_code', code, redirect_uri: redirectUri, code_verifier: verifier },
  });
  if (token.status !== 200) throw new Error(`token exchange answered ${token.status}: ${token.text}`);
  return token.body;
}

export function slot(hoursFromNow: number, minutes = 30) {
  const start = new Date(Math.floor(Date.now() / 3_600_000) * 3_600_000 + hoursFromNow * 3_600_000);
  return { start_time: start.toISOString(), end_time: new Date(start.getTime() + minutes * 60_000).toISOString() };
}

export { eventually } from '@calsync/service-kit/testing';
