import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor, localInfra, startGatewaySystem, type GatewaySystem, type SimUser } from './harness';

// The gateway gets a nats-server of its own, stopped and started again on the same port and
// store directory, as a NATS restart in production would be.
const storeDir = mkdtempSync(join(tmpdir(), 'gateway-nats-'));
let natsPort: number;
let nats: { url: string; stop(): Promise<void> };
let system: GatewaySystem;
let alice: SimUser;

beforeAll(async () => {
  natsPort = await localInfra.freePort();
  nats = await localInfra.startLocalNats({ dir: storeDir, port: natsPort });
  system = await startGatewaySystem('gwoutage', { gatewayNatsUrl: nats.url });
  alice = await system.connectWithToken('user-alice');
}, 120_000);

afterAll(async () => {
  await system?.stop();
  await nats?.stop();
  rmSync(storeDir, { recursive: true, force: true });
});

const readiness = async () => {
  const response = await fetch(`${system.url}/readyz`);
  return { status: response.status, body: (await response.json()) as { checks: Record<string, string> } };
};

test('with NATS stopped the gateway answers 503, stores nothing, and recovers by itself when NATS returns', async () => {
  const before = await system.withheldDelivery(alice, 1);
  expect((await system.replay(before)).status).toBe(200);
  expect((await readiness()).status).toBe(200);

  await nats.stop();
  await waitFor(async () => ((await readiness()).body.checks.nats === 'down' ? true : undefined));
  expect(await readiness()).toEqual({
    status: 503,
    body: { ready: false, checks: { shutdown: 'running', nats: 'down', subscription: 'serving' } },
  });

  const during = await system.withheldDelivery(alice, 2);
  for (let attempt = 0; attempt < 2; attempt += 1) {
    const response = await system.replay(during);
    expect(response.status).toBe(503);
    expect(response.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(await response.json()).toEqual({ error: 'nats_unavailable', message: expect.any(String) });
  }

  nats = await localInfra.startLocalNats({ dir: storeDir, port: natsPort });
  await waitFor(async () => ((await readiness()).status === 200 ? true : undefined));

  // Calendly's retry is the first time this delivery is stored: nothing was kept from the 503s.
  const retried = await system.replay(during);
  expect(retried.status).toBe(200);
  expect(await retried.json()).toEqual({ status: 'stored' });
  expect(await (await system.replay(during)).json()).toEqual({ status: 'duplicate' });

  const stored = await system.storedEvents();
  expect(stored.map(({ event }) => event.payload.toString())).toEqual([before.body, during.body]);
}, 120_000);

test('with subscription stopped the gateway answers 503, stores nothing, and recovers when it is back', async () => {
  const delivery = await system.withheldDelivery(alice, 3);
  await system.stopSubscription();
  const refused = await system.replay(delivery);
  expect(refused.status).toBe(503);
  expect(refused.headers.get('retry-after')).toMatch(/^\d+$/);
  expect(await refused.json()).toEqual({ error: 'subscription_unavailable', message: expect.any(String) });
  expect(await readiness()).toMatchObject({ status: 503, body: { checks: { subscription: 'not_serving' } } });
  expect((await system.storedEvents()).some(({ event }) => event.payload.toString() === delivery.body)).toBe(false);

  await system.startSubscription();
  await waitFor(async () => ((await readiness()).status === 200 ? true : undefined));
  const retried = await system.replay(delivery);
  expect(retried.status).toBe(200);
  expect(await retried.json()).toEqual({ status: 'stored' });
}, 120_000);

test('answers 503 for a connection whose import progress meetings cannot report, and the sync state once it can', async () => {
  await system.stopSubscription();
  // Subscription runs, but its meetings answers nothing: GetSyncState marks the import unknown.
  await system.startSubscription({ MEETINGS_ADDR: `127.0.0.1:${await localInfra.freePort()}` });
  try {
    await waitFor(async () => ((await readiness()).status === 200 ? true : undefined));
    const refused = await system.api('/api/calendly/connection', { userId: 'user-alice' });
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(refused.body).toEqual({ error: 'service_unavailable', message: expect.stringContaining('meetings') });
  } finally {
    await system.stopSubscription();
    await system.startSubscription();
  }
  const shown = await waitFor(async () => {
    const answer = await system.api('/api/calendly/connection', { userId: 'user-alice' });
    return answer.status === 200 ? answer.body : undefined;
  });
  expect(shown).toMatchObject({ connected: true, sync: { import: { status: expect.any(String) } } });
}, 120_000);

test("sees subscription back within seconds after an outage longer than gRPC's default back-off grows", async () => {
  const delivery = await system.withheldDelivery(alice, 4);
  await system.stopSubscription();
  // grpc-js's default back-off would by now wait about 16 s between attempts (up to 120 s):
  // the gateway keeps probing through the outage, as Kubernetes' readiness probe would.
  const stoppedAt = Date.now();
  await waitFor(
    async () => (await readiness()).body.checks.subscription === 'not_serving' && Date.now() - stoppedAt > 30_000,
    { timeoutMs: 60_000, intervalMs: 500, what: 'a 30 s subscription outage' },
  );
  await system.startSubscription();
  const backAt = Date.now();
  await waitFor(async () => (await readiness()).status === 200, { timeoutMs: 30_000, intervalMs: 100 });
  const retried = await system.replay(delivery);
  expect(retried.status).toBe(200);
  // The channel retries at most every 2 s (+/-20 % jitter); the rest is one readiness probe.
  expect(Date.now() - backAt).toBeLessThan(4_000);
}, 120_000);
