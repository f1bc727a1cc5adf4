import { randomUUID } from 'node:crypto';
import { testNatsUrl } from '@calsync/service-kit/testing';
import { connect, type NatsConnection } from 'nats';
import {
  startGatewaySystem,
  waitFor,
  type GatewaySystem,
  type SimUser,
  type DeliveryView,
  deliveriesOf,
  publishUnreadable,
} from './harness';

// Two users, each with deliveries applied and one dead-lettered: each sees their own log only.
let system: GatewaySystem;
let nc: NatsConnection;
const forgotten = `user-log-${randomUUID()}`;
const kept = `user-other-${randomUUID()}`;
const calendly: Record<string, SimUser & { email: string }> = {};

beforeAll(async () => {
  system = await startGatewaySystem('gwdeliverylog');
  nc = await connect({ servers: testNatsUrl() });
  let n = 0;
  for (const userId of [forgotten, kept]) {
    calendly[userId] = (await system.connectWithToken(userId)) as SimUser & { email: string };
    for (let booking = 0; booking < 2; booking++) await system.book(calendly[userId]!, (n += 1));
    await publishUnreadable(system, nc, userId, calendly[userId]!);
  }
  for (const userId of [forgotten, kept]) {
    await waitFor(
      async () => {
        const outcomes = (await deliveriesOf(system, userId)).map((delivery) => delivery.outcome).sort();
        return outcomes.join() === 'applied,applied,dead_lettered' || undefined;
      },
      { what: `the deliveries of ${userId}`, timeoutMs: 30_000 },
    );
  }
}, 120_000);

afterAll(async () => {
  await nc?.close();
  await system?.stop();
});

describe('GET /api/deliveries', () => {
  it("shows the signed-in user their own deliveries, newest first, and never another user's", async () => {
    const mine = await deliveriesOf(system, forgotten);
    const theirs = await deliveriesOf(system, kept);
    expect(mine.map((delivery) => delivery.outcome).sort()).toEqual(['applied', 'applied', 'dead_lettered']);
    expect(mine.find((delivery) => delivery.outcome === 'dead_lettered')!.deliveryKey).toBe(`unreadable-${forgotten}`);
    const received = mine.map((delivery) => delivery.recordedAt);
    expect(received).toEqual([...received].sort().reverse());
    for (const delivery of mine) {
      expect(delivery.eventType).toBe('invitee.created');
      expect(Date.parse(delivery.recordedAt) - Date.parse(delivery.receivedAt)).toBe(delivery.latencyMs);
      expect(Object.keys(delivery).sort()).toEqual(
        ['deliveryKey', 'eventType', 'latencyMs', 'outcome', 'receivedAt', 'recordedAt'].sort(),
      );
    }
    const theirKeys = new Set(theirs.map((delivery) => delivery.deliveryKey));
    expect(mine.some((delivery) => theirKeys.has(delivery.deliveryKey))).toBe(false);
    // Nothing of a payload: no invitee, no email.
    expect(JSON.stringify(mine)).not.toMatch(/@example\.com|invitees\//);
  });

  it('pages with limit and the cursor it hands out', async () => {
    const first = await system.api('/api/deliveries?limit=2', { userId: forgotten });
    expect(first.status).toBe(200);
    expect(first.body.deliveries).toHaveLength(2);
    const rest = await system.api(`/api/deliveries?limit=2&cursor=${String(first.body.nextCursor)}`, {
      userId: forgotten,
    });
    expect(rest.body).toMatchObject({ nextCursor: null });
    expect([...(first.body.deliveries as DeliveryView[]), ...(rest.body.deliveries as DeliveryView[])]).toEqual(
      await deliveriesOf(system, forgotten),
    );
  });

  it.each([
    ['?limit=0', /limit/],
    ['?limit=101', /limit/],
    ['?limit=ten', /limit/],
    ['?cursor=not-a-cursor', /cursor/],
    ['?cursor=d1.0', /cursor/],
    ['?limit=1&limit=2', /limit/],
    ['?user=someone-else', /unknown parameter "user"/],
  ])('answers 400 to %s', async (query, message) => {
    const answer = await system.api(`/api/deliveries${query}`, { userId: forgotten });
    expect(answer.status).toBe(400);
    expect(answer.body).toMatchObject({ error: 'invalid_request', message: expect.stringMatching(message) });
  });

  it('answers 401 without a signed-in user', async () => {
    expect((await system.api('/api/deliveries')).status).toBe(401);
  });
});
