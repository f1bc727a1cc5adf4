import { startGatewaySystem, waitFor, type DeliveryAttempt, type GatewaySystem, type SimUser } from './harness';

let system: GatewaySystem;
let alice: SimUser;

beforeAll(async () => {
  system = await startGatewaySystem('gwreplicas');
  alice = await system.connectWithToken('user-alice');
}, 120_000);

afterAll(() => system?.stop());

/** Deliveries a subscription replica has verified, from its /metrics (stream items and unary calls alike). */
async function verifyCalls(metricsPort: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  return text
    .split('\n')
    .filter((line) => line.startsWith('subscription_verifications_total{'))
    .reduce((sum, line) => sum + Number(line.split(' ').at(-1)), 0);
}

test('two gateways and two subscription replicas share the deliveries, each stored exactly once', async () => {
  const { gatewayUrl, subscriptionMetricsPorts } = await system.scaleOut();
  const before = await Promise.all(subscriptionMetricsPorts.map(verifyCalls));

  const deliveries: DeliveryAttempt[] = [];
  for (let n = 0; n < 6; n += 1) deliveries.push(await system.withheldDelivery(alice, 100 + n));
  // Alternate gateways, as a Service spreads Calendly's requests over the gateway pods.
  const answers = [];
  for (const [index, delivery] of deliveries.entries()) {
    const path = new URL(delivery.url).pathname;
    const origin = index % 2 === 0 ? system.url : gatewayUrl;
    const response = await fetch(`${origin}${path}`, {
      method: 'POST',
      headers: delivery.headers,
      body: delivery.body,
    });
    answers.push([response.status, ((await response.json()) as { status: string }).status]);
  }
  expect(answers).toEqual(deliveries.map(() => [200, 'stored']));

  // The second gateway spreads its verifies over both replicas (its VerifyDeliveries streams are
  // opened round-robin over the READY ones and used in turn, so a replica still connecting may
  // miss the first few): repeats through it reach both.
  const replay = (origin: string, delivery: DeliveryAttempt) =>
    fetch(`${origin}${new URL(delivery.url).pathname}`, {
      method: 'POST',
      headers: delivery.headers,
      body: delivery.body,
    });
  await waitFor(
    async () => {
      expect(await (await replay(gatewayUrl, deliveries[1]!)).json()).toEqual({ status: 'duplicate' });
      const after = await Promise.all(subscriptionMetricsPorts.map(verifyCalls));
      // The first replica also answered the first gateway's three.
      return after[0]! - before[0]! > 3 && after[1]! > before[1]!;
    },
    { what: 'verify calls from the second gateway on both replicas' },
  );

  // Every delivery is in the stream once, whichever gateway took it; a repeat is a duplicate.
  const stored = (await system.storedEvents()).map(({ event }) => event.payload.toString());
  for (const delivery of deliveries) expect(stored.filter((body) => body === delivery.body)).toHaveLength(1);
  expect(await (await replay(system.url, deliveries[0]!)).json()).toEqual({ status: 'duplicate' });

  // With the first replica gone, the second gateway goes on through the other one.
  await system.stopSubscription();
  const late = await system.withheldDelivery(alice, 200);
  expect((await replay(gatewayUrl, late)).status).toBe(200);
}, 120_000);
