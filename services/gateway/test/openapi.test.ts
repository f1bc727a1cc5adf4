import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import Ajv2020 from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import { generateKeyPair, SignJWT } from 'jose';
import type { OpenAPIObject, OperationObject, ResponseObject } from 'openapi3-ts/oas31';
import { openApiDocument, openApiPath } from '../src/http/openapi';
import {
  connectWithOAuth,
  localInfra,
  startGatewaySystem,
  waitFor,
  type DeliveryAttempt,
  type GatewaySystem,
  type SimUser,
} from './harness';

/*
 * Keeps /openapi.json true: the router serves exactly the documented routes, and every documented
 * answer (each success and each error status of each operation) is checked against a real answer
 * of a running gateway, its status, headers and body validated against the document.
 */

let system: GatewaySystem;
let offline: { url: string };
let keySetDown: { url: string };
let document: OpenAPIObject;
let ajv: Ajv2020;
let alice: SimUser;
let carol: SimUser;
let aliceDelivery: DeliveryAttempt;
const checked = new Set<string>();
const methods = ['get', 'post', 'put', 'patch', 'delete'] as const;

beforeAll(async () => {
  system = await startGatewaySystem('gwopenapi');
  offline = await system.gatewayWithoutUpstreams();
  keySetDown = await system.gatewayWithoutUpstreams({
    jwksUrl: `http://127.0.0.1:${await localInfra.freePort()}/jwks.json`,
  });
  const served = await fetch(`${system.url}/openapi.json`);
  document = (await served.json()) as OpenAPIObject;
  ajv = new Ajv2020({ strict: true, allErrors: true });
  addFormats(ajv);
  // The document's own keywords are not JSON Schema: refs into it resolve, its top level is not compiled.
  ajv.addKeyword({ keyword: 'openapi' });
  for (const keyword of ['info', 'tags', 'components', 'paths', 'servers', 'security', 'webhooks']) {
    ajv.addKeyword({ keyword });
  }
  ajv.addSchema(document as object, 'openapi.json');
  [alice, carol] = await Promise.all(['alice', 'carol'].map((name) => system.createSimUser(name)));
  for (const [userId, user] of [
    ['user-alice', alice],
    ['user-carol', carol],
  ] as const) {
    const landed = await connectWithOAuth(system, userId, user);
    if (!landed.url.endsWith('calendly=connected'))
      throw new Error(`OAuth connect of ${userId} landed at ${landed.url}`);
  }
  await system.book(alice, 1);
  aliceDelivery = await system.waitForAttempt((a) => a.status === 200 && JSON.parse(a.body).created_by === alice.uri);
  await waitFor(async () => {
    const { body } = await system.api('/api/meetings', { userId: 'user-alice' });
    return (body.meetings as unknown[]).length === 1;
  });
}, 180_000);

afterAll(async () => {
  await system?.stop();
});

const pointer = (...parts: string[]) => parts.map((part) => part.replace(/~/g, '~0').replace(/\//g, '~1')).join('/');

/**
 * Checks a real answer of `method path` (a documented path template) against the document: the
 * status is documented, each required header is there, the media type is documented and a JSON
 * body matches its schema. Records the answer as checked.
 */
async function conforms(
  template: string,
  method: (typeof methods)[number],
  response: Response,
): Promise<{ status: number; body: unknown }> {
  const operation = document.paths?.[template]?.[method] as OperationObject | undefined;
  if (!operation) throw new Error(`${method.toUpperCase()} ${template} is not in the document`);
  const status = String(response.status);
  const documented = operation.responses?.[status] as ResponseObject | undefined;
  const text = await response.text();
  if (!documented) {
    throw new Error(`${method.toUpperCase()} ${template} answered ${status}, which is not documented: ${text}`);
  }
  for (const [name, header] of Object.entries(documented.headers ?? {})) {
    if ('required' in header && header.required)
      expect([name, response.headers.get(name)]).toEqual([name, expect.any(String)]);
  }
  let body: unknown = text;
  if (documented.content) {
    const mediaType = (response.headers.get('content-type') ?? '').split(';')[0]!.trim();
    expect(Object.keys(documented.content)).toContain(mediaType);
    if (mediaType === 'application/json') {
      body = JSON.parse(text);
      const validate = ajv.getSchema(
        `openapi.json#/${pointer('paths', template, method, 'responses', status, 'content', mediaType, 'schema')}`,
      )!;
      if (!validate(body)) {
        throw new Error(
          `${method.toUpperCase()} ${template} ${status} does not match the document: ${ajv.errorsText(validate.errors)}\n${text}`,
        );
      }
    }
  } else {
    expect(text).toBe('');
  }
  checked.add(`${method.toUpperCase()} ${template} ${status}`);
  return { status: response.status, body };
}

const bearer = async (userId: string) => ({ authorization: `Bearer ${await system.jwtFor(userId)}` });
const call = async (base: string, path: string, init: RequestInit = {}) =>
  fetch(`${base}${path}`, { redirect: 'manual', ...init });

describe('the document', () => {
  it('is valid OpenAPI 3.1 and docs/http-api.md is what it renders', () => {
    const check = spawnSync(process.execPath, [join(__dirname, '../../../scripts/openapi-docs.mjs'), '--check'], {
      encoding: 'utf8',
    });
    expect({ status: check.status, stderr: check.stderr }).toEqual({ status: 0, stderr: '' });
  });

  it('is served at /openapi.json as the gateway builds it', async () => {
    expect(document).toEqual(JSON.parse(JSON.stringify(openApiDocument)));
    expect(document.openapi).toMatch(/^3\.1\./);
    await conforms('/openapi.json', 'get', await call(system.url, '/openapi.json'));
  });

  it('describes every route the router serves, and no route it does not serve', () => {
    const served = system.gateway.routes.map(({ method, path }) => `${method} ${openApiPath(path)}`).sort();
    const documented = Object.entries(document.paths ?? {})
      .flatMap(([path, item]) =>
        methods.filter((method) => item[method]).map((method) => `${method.toUpperCase()} ${path}`),
      )
      .sort();
    expect(documented).toEqual(served);
  });
});

describe('deliveries', () => {
  const perUser = '/webhooks/calendly/{hookId}';
  const legacy = '/api/calendly/webhook';
  let carolsPath: string;
  beforeAll(async () => {
    const { collection } = await system.simCall<{ collection: { callback_url: string }[] }>(
      `/_sim/webhook_subscriptions?user=${encodeURIComponent(carol.uri)}&state=active`,
    );
    carolsPath = new URL(collection[0]!.callback_url).pathname;
  });

  it('answers stored, duplicate and each refusal as documented', async () => {
    const ownPath = new URL(aliceDelivery.url).pathname;
    const { body: duplicate } = await conforms(perUser, 'post', await system.replay(aliceDelivery));
    expect(duplicate).toEqual({ status: 'duplicate' });
    const garbled = { 'calendly-webhook-signature': 'v1=nothex' };
    await conforms(perUser, 'post', await system.replaySigned(aliceDelivery, '{"event":'));
    await conforms(perUser, 'post', await system.replay(aliceDelivery, { headers: garbled }));
    await conforms(perUser, 'post', await system.replay(aliceDelivery, { path: carolsPath }));
    await conforms(perUser, 'post', await system.replay(aliceDelivery, { path: '/webhooks/calendly/no-such-hook' }));
    await conforms(perUser, 'post', await system.replay(aliceDelivery, { body: ' '.repeat(600 * 1024) }));
    await conforms(perUser, 'post', await system.replay(aliceDelivery, { headers: { 'content-type': 'text/plain' } }));
    await conforms(
      perUser,
      'post',
      await fetch(`${offline.url}${ownPath}`, {
        method: 'POST',
        headers: aliceDelivery.headers,
        body: aliceDelivery.body,
      }),
    );
    // The seed's single URL: a per-user delivery has no hook there (a seed-era hook is needed for the
    // others, see legacyAnswersCheckedElsewhere).
    const sendLegacy = (init: { headers?: Record<string, string>; body?: string } = {}, base = system.url) =>
      fetch(`${base}${legacy}`, {
        method: 'POST',
        headers: { ...aliceDelivery.headers, ...init.headers },
        body: init.body ?? aliceDelivery.body,
      });
    await conforms(legacy, 'post', await sendLegacy());
    await conforms(legacy, 'post', await sendLegacy({ body: '[]' }));
    await conforms(legacy, 'post', await sendLegacy({ headers: { 'content-type': 'text/plain' } }));
    await conforms(legacy, 'post', await sendLegacy({ body: ' '.repeat(600 * 1024) }));
    await conforms(legacy, 'post', await sendLegacy({}, offline.url));
  });

  it('stores a new delivery', async () => {
    const withheld = await system.withheldDelivery(alice, 2);
    const { body } = await conforms(perUser, 'post', await system.replay(withheld));
    expect(body).toEqual({ status: 'stored' });
  });
});

describe('the connection', () => {
  it('starts a connect as a redirect or as JSON', async () => {
    await conforms(
      '/api/calendly/connect',
      'get',
      await call(system.url, '/api/calendly/connect', { headers: await bearer('user-x') }),
    );
    const asJson = await call(system.url, '/api/calendly/connect', {
      headers: { ...(await bearer('user-x')), accept: 'application/json' },
    });
    await conforms('/api/calendly/connect', 'get', asJson);
    await conforms('/api/calendly/connect', 'get', await call(system.url, '/api/calendly/connect'));
    await conforms(
      '/api/calendly/connect',
      'get',
      await call(offline.url, '/api/calendly/connect', { headers: await bearer('user-x') }),
    );
  });

  it('sends the browser back from the callback', async () => {
    const response = await call(system.url, '/api/calendly/oauth/callback?state=x&code=y');
    await conforms('/api/calendly/oauth/callback', 'get', response);
    expect(response.headers.get('location')).toBe(`${system.appUrl}?calendly=error&reason=browser_mismatch`);
  });

  it('connects with a personal token and refuses what it must', async () => {
    const path = '/api/calendly/token';
    const post = async (base: string, body: string, headers: Record<string, string> = {}, userId = 'user-pat') =>
      call(base, path, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(await bearer(userId)), ...headers },
        body,
      });
    const pat = await system.createSimUser('pat');
    await conforms(path, 'post', await post(system.url, JSON.stringify({ token: pat.personal_access_token })));
    await conforms(path, 'post', await post(system.url, JSON.stringify({ token: 'not-a-token' })));
    await conforms(
      path,
      'post',
      await post(system.url, JSON.stringify({ token: pat.personal_access_token }), {}, 'user-other'),
    );
    await conforms(path, 'post', await post(system.url, JSON.stringify({ token: 'x'.repeat(20_000) })));
    await conforms(path, 'post', await post(system.url, '{}', { 'content-type': 'text/plain' }));
    const free = await system.createSimUser('free', { plan: 'free' });
    await conforms(
      path,
      'post',
      await post(system.url, JSON.stringify({ token: free.personal_access_token }), {}, 'user-free'),
    );
    await conforms(path, 'post', await post(system.url, '{}', { authorization: 'Bearer nope' }));
    await conforms(path, 'post', await post(offline.url, JSON.stringify({ token: pat.personal_access_token })));
  });

  it('shows and removes the connection', async () => {
    const path = '/api/calendly/connection';
    const { body } = await conforms(path, 'get', await call(system.url, path, { headers: await bearer('user-alice') }));
    expect(body).toMatchObject({ connected: true, webhook: { state: 'active' } });
    await conforms(path, 'get', await call(system.url, path, { headers: await bearer('user-nobody') }));
    await conforms(path, 'get', await call(system.url, path));
    await conforms(path, 'get', await call(offline.url, path, { headers: await bearer('user-alice') }));
    await conforms(
      path,
      'delete',
      await call(system.url, path, { method: 'DELETE', headers: await bearer('user-pat') }),
    );
    await conforms(path, 'delete', await call(system.url, path, { method: 'DELETE' }));
    await conforms(
      path,
      'delete',
      await call(offline.url, path, { method: 'DELETE', headers: await bearer('user-alice') }),
    );
    await conforms(
      path,
      'delete',
      await call(system.url, `${path}?purge=maybe`, { method: 'DELETE', headers: await bearer('user-alice') }),
    );
    await conforms(
      path,
      'delete',
      await call(system.url, `${path}?purge=true`, { method: 'DELETE', headers: await bearer('user-nobody') }),
    );
  });
});

describe('meetings', () => {
  it('lists, gets and refuses as documented', async () => {
    const headers = await bearer('user-alice');
    const { body } = await conforms('/api/meetings', 'get', await call(system.url, '/api/meetings', { headers }));
    const [meeting] = (body as { meetings: { id: string }[] }).meetings;
    await conforms('/api/meetings', 'get', await call(system.url, '/api/meetings?limit=0', { headers }));
    await conforms('/api/meetings', 'get', await call(system.url, '/api/meetings'));
    await conforms('/api/meetings', 'get', await call(offline.url, '/api/meetings', { headers }));
    const one = '/api/meetings/{id}';
    await conforms(one, 'get', await call(system.url, `/api/meetings/${meeting!.id}`, { headers }));
    await conforms(
      one,
      'get',
      await call(system.url, `/api/meetings/${meeting!.id}`, { headers: await bearer('user-carol') }),
    );
    await conforms(one, 'get', await call(system.url, `/api/meetings/${meeting!.id}`));
    await conforms(one, 'get', await call(offline.url, `/api/meetings/${meeting!.id}`, { headers }));
  });

  it("lists the user's delivery log and refuses as documented", async () => {
    const path = '/api/deliveries';
    const headers = await bearer('user-alice');
    const { body } = await conforms(path, 'get', await call(system.url, path, { headers }));
    expect((body as { deliveries: unknown[] }).deliveries).not.toEqual([]);
    await conforms(path, 'get', await call(system.url, `${path}?cursor=bogus`, { headers }));
    await conforms(path, 'get', await call(system.url, path));
    await conforms(path, 'get', await call(offline.url, path, { headers }));
  });

  it('issues stream tokens and opens the events stream', async () => {
    const tokenPath = '/api/meetings/events/token';
    const { body } = await conforms(
      tokenPath,
      'post',
      await call(system.url, tokenPath, { method: 'POST', headers: await bearer('user-alice') }),
    );
    await conforms(tokenPath, 'post', await call(system.url, tokenPath, { method: 'POST' }));
    // A token of an asymmetric key: its key set must be fetched, and answers nothing.
    const { privateKey } = await generateKeyPair('ES256');
    const foreign = await new SignJWT({})
      .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
      .setSubject('user-alice')
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(privateKey);
    const unverifiable = await call(keySetDown.url, tokenPath, {
      method: 'POST',
      headers: { authorization: `Bearer ${foreign}` },
    });
    expect((await conforms(tokenPath, 'post', unverifiable)).body).toMatchObject({ error: 'auth_unavailable' });
    const events = '/api/meetings/events';
    const { url } = body as { url: string };
    const abort = new AbortController();
    const stream = await fetch(`${system.url}${url}`, { signal: abort.signal });
    // The stream never ends: check its status and headers, then hang up.
    const documented = document.paths![events]!.get!.responses![String(stream.status)] as ResponseObject;
    expect(stream.status).toBe(200);
    expect(Object.keys(documented.content!)).toContain(stream.headers.get('content-type')!.split(';')[0]);
    abort.abort();
    checked.add(`GET ${events} 200`);
    await conforms(events, 'get', await call(system.url, `${url}&lastEventId=${encodeURIComponent('not an id')}`));
    await conforms(events, 'get', await call(system.url, `${events}?token=forged`));
    await conforms(events, 'get', await call(offline.url, events, { headers: await bearer('user-alice') }));
  });
});

describe('operations', () => {
  it('answers the probes and metrics as documented', async () => {
    await conforms('/healthz', 'get', await call(system.url, '/healthz'));
    await conforms('/readyz', 'get', await call(system.url, '/readyz'));
    await conforms('/readyz', 'get', await call(offline.url, '/readyz'));
    await conforms('/metrics', 'get', await call(system.url, '/metrics'));
  });
});

/**
 * The seed's single URL answers 200, 400, 401 and 403 only for a seed-era hook (a 400 needs that
 * hook's genuine signature), which only subscription's legacy import makes
 * (services/subscription/test/legacy.test.ts verifies those). Its handler is the per-user route's,
 * whose 200, 400, 401 and 403 are checked here.
 */
const legacyAnswersCheckedElsewhere = ['200', '400', '401', '403'].map(
  (status) => `POST /api/calendly/webhook ${status}`,
);

test('every documented answer was checked against a real one', () => {
  const documented = Object.entries(document.paths ?? {}).flatMap(([path, item]) =>
    methods
      .filter((method) => item[method])
      .flatMap((method) =>
        Object.keys((item[method] as OperationObject).responses ?? {}).map(
          (status) => `${method.toUpperCase()} ${path} ${status}`,
        ),
      ),
  );
  expect(
    documented.filter((answer) => !checked.has(answer) && !legacyAnswersCheckedElsewhere.includes(answer)).sort(),
  ).toEqual([]);
});
