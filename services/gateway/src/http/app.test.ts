import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inviteeCreatedBody } from '@calsync/calendly-client/testing';
import { createMetricsRegistry } from '@calsync/service-kit';
import { captureLogger } from '@calsync/service-kit/testing';
import { healthRoutes } from '../health/health-routes';
import { createGatewayMetrics } from '../metrics';
import { createDeliveryIntake, type DeliveryVerifier, type EventPublisher } from '../webhooks/delivery-intake';
import { webhookRoutes } from '../webhooks/webhook-routes';
import { createApp } from './app';
import { createRequestTracker } from './request-tracker';

// The dependencies behind the intake record calls and refuse to work: every request in this
// file must be answered by the gateway itself, before anything else is asked.
const calls: string[] = [];
const verifier: DeliveryVerifier = {
  verify: () => {
    calls.push('verify');
    return Promise.reject(new Error('must not be called'));
  },
};
const publisher: EventPublisher = {
  publish: () => {
    calls.push('publish');
    return Promise.reject(new Error('must not be called'));
  },
};

const maxBodyBytes = 2048;
const demoDir = mkdtempSync(join(tmpdir(), 'gateway-demo-'));
writeFileSync(join(demoDir, 'index.html'), '<h1>demo</h1>');
writeFileSync(join(demoDir, 'app.js'), 'console.log(1)');
const { log, lines } = captureLogger('gateway', 'debug');

function startApp(options: { demoDir?: string; ready?: boolean }) {
  const registry = createMetricsRegistry('gateway');
  const app = createApp({
    log,
    metrics: createGatewayMetrics(registry),
    tracker: createRequestTracker(),
    stopping: () => false,
    corsOrigins: ['https://app.example.com'],
    ...(options.demoDir ? { demoDir: options.demoDir } : {}),
    routers: [
      healthRoutes({
        registry,
        readiness: {
          check: () =>
            Promise.resolve({
              ready: options.ready ?? true,
              checks: {
                shutdown: 'running',
                nats: 'up',
                subscription: options.ready === false ? 'not_serving' : 'serving',
              },
            }),
        },
      }),
      webhookRoutes({ intake: createDeliveryIntake({ verifier, publisher }), maxBodyBytes }),
    ],
  });
  const server = createServer(app.callback());
  return new Promise<{ server: Server; url: string }>((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({ server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` }),
    ),
  );
}

let plain: { server: Server; url: string };
let withDemo: { server: Server; url: string };

beforeAll(async () => {
  plain = await startApp({ ready: false });
  withDemo = await startApp({ demoDir });
});

afterAll(async () => {
  for (const { server } of [plain, withDemo]) {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
  rmSync(demoDir, { recursive: true, force: true });
});

beforeEach(() => {
  calls.length = 0;
});

const signature = `t=${Math.floor(Date.now() / 1000)},v1=${'a'.repeat(64)}`;
const envelope = inviteeCreatedBody({ uri: 'https://api.calendly.com/users/U1', email: 'u1@example.test', name: 'U1' });

function deliver(body: string | Buffer, headers: Record<string, string> = {}, path = '/webhooks/calendly/hook_abc') {
  return fetch(`${plain.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'calendly-webhook-signature': signature, ...headers },
    body,
  });
}

describe('webhook routes refuse bad deliveries before asking anyone', () => {
  it.each([
    [
      'a non-JSON content type',
      () => deliver(envelope, { 'content-type': 'text/plain' }),
      415,
      'unsupported_media_type',
    ],
    ['no content type', () => deliver(Buffer.from(envelope), { 'content-type': '' }), 415, 'unsupported_media_type'],
    ['a body over the limit', () => deliver('x'.repeat(maxBodyBytes + 1)), 413, 'payload_too_large'],
    ['no signature header', () => deliver(envelope, { 'calendly-webhook-signature': '' }), 401, 'signature_missing'],
    [
      'a hook id no subscription can have',
      () => deliver(envelope, {}, '/webhooks/calendly/not%20a%20hook'),
      404,
      'unknown_hook',
    ],
  ])('answers %s with its status', async (_label, send, status, error) => {
    const response = await send();
    expect(response.status).toBe(status);
    expect(await response.json()).toEqual({ error, message: expect.any(String) });
    expect(calls).toEqual([]);
  });

  it('leaves the body to the verifier unread: not JSON is for subscription to say, after the signature', async () => {
    const response = await deliver('{"event": "invitee.created",');
    expect(response.status).toBe(503);
    expect(calls).toEqual(['verify']);
  });

  it('answers a verifier failure it cannot classify with 503 and Retry-After', async () => {
    const response = await deliver(envelope);
    expect(response.status).toBe(503);
    expect(response.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(await response.json()).toMatchObject({ error: 'subscription_unavailable' });
    expect(calls).toEqual(['verify']);
  });
});

describe('request ids, errors and logs', () => {
  it("echoes the caller's X-Request-Id and puts it on every log line of the request", async () => {
    const response = await deliver(envelope, { 'x-request-id': 'req-123' }, '/webhooks/calendly/not%20a%20hook');
    expect(response.headers.get('x-request-id')).toBe('req-123');
    const mine = lines
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((l) => l.requestId === 'req-123');
    expect(mine.map((l) => l.msg)).toEqual(['request']);
    expect(mine[0]).toMatchObject({
      route: '/webhooks/calendly/:hookId',
      status: 404,
      outcome: 'unknown_hook',
      hookId: 'not a hook',
    });
    expect(JSON.stringify(mine)).not.toContain(signature);
  });

  it('makes up a request id when the caller sends none or a strange one', async () => {
    const none = await fetch(`${plain.url}/healthz`);
    expect(none.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    const strange = await fetch(`${plain.url}/healthz`, { headers: { 'x-request-id': 'a b\u00e9' } });
    expect(strange.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('answers unknown routes 404 and wrong methods 405, as JSON', async () => {
    const missing = await fetch(`${plain.url}/nope`);
    expect(missing.status).toBe(404);
    expect(await missing.json()).toEqual({ error: 'not_found', message: 'no such route' });
    const wrongMethod = await fetch(`${plain.url}/webhooks/calendly/abc`);
    expect(wrongMethod.status).toBe(405);
    expect(wrongMethod.headers.get('allow')).toContain('POST');
    expect(await wrongMethod.json()).toMatchObject({ error: 'method_not_allowed' });
  });
});

describe('health and metrics', () => {
  it('is live while not ready, and says why it is not ready', async () => {
    expect((await fetch(`${plain.url}/healthz`)).status).toBe(200);
    const ready = await fetch(`${plain.url}/readyz`);
    expect(ready.status).toBe(503);
    expect(await ready.json()).toMatchObject({ ready: false, checks: { subscription: 'not_serving' } });
    expect((await fetch(`${withDemo.url}/readyz`)).status).toBe(200);
  });

  it('counts requests by route pattern and outcome', async () => {
    await deliver(envelope, { 'content-type': 'text/plain' }, '/webhooks/calendly/hook_metrics');
    const metrics = await (await fetch(`${plain.url}/metrics`)).text();
    expect(metrics).toMatch(
      /http_requests_total\{route="\/webhooks\/calendly\/:hookId",method="POST",status="415",outcome="unsupported_media_type",service="gateway"\} \d+/,
    );
    expect(metrics).toContain('http_request_duration_seconds_bucket');
    expect(metrics).not.toContain('hook_metrics');
  });
});

describe('CORS', () => {
  it('lets a configured origin call the API and read the request id', async () => {
    const response = await fetch(`${plain.url}/healthz`, { headers: { origin: 'https://app.example.com' } });
    expect(response.headers.get('access-control-allow-origin')).toBe('https://app.example.com');
    expect(response.headers.get('access-control-expose-headers')).toContain('X-Request-Id');
  });

  it('answers a preflight for a configured origin with the allowed methods and headers', async () => {
    const response = await fetch(`${plain.url}/api/calendly/connection`, {
      method: 'OPTIONS',
      headers: {
        origin: 'https://app.example.com',
        'access-control-request-method': 'DELETE',
        'access-control-request-headers': 'authorization',
      },
    });
    expect(response.status).toBe(204);
    expect(response.headers.get('access-control-allow-methods')).toContain('DELETE');
    expect(response.headers.get('access-control-allow-headers')).toContain('Authorization');
    // A single-page app of the same site keeps the OAuth connect cookie only with credentials.
    expect(response.headers.get('access-control-allow-credentials')).toBe('true');
  });

  it('gives other origins nothing', async () => {
    const response = await fetch(`${plain.url}/healthz`, { headers: { origin: 'https://evil.example.com' } });
    expect(response.headers.get('access-control-allow-origin')).toBeNull();
  });
});

describe('demo folder', () => {
  it('is not served unless DEMO_DIR is set', async () => {
    expect((await fetch(`${plain.url}/demo/`)).status).toBe(404);
  });

  it('serves the folder at /demo, index included, and nothing outside it', async () => {
    const index = await fetch(`${withDemo.url}/demo/`);
    expect(index.status).toBe(200);
    expect(await index.text()).toBe('<h1>demo</h1>');
    const script = await fetch(`${withDemo.url}/demo/app.js`);
    expect(script.headers.get('content-type')).toContain('javascript');
    expect((await fetch(`${withDemo.url}/demo/missing.js`)).status).toBe(404);
    expect((await fetch(`${withDemo.url}/demo/..%2f..%2fetc%2fpasswd`)).status).not.toBe(200);
  });
});
