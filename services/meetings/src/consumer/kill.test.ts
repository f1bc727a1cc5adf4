import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { spawnService } from '@calsync/service-kit/testing';
import { fakeCalendlyAccount, type Delivery } from '../../test/calendly-fixtures';
import { createTestWorld, waitFor, inboxReaches, type TestWorld } from '../../test/harness';

// The real process, built by `npm test` (or `npx tsc -p services/meetings/tsconfig.build.json`).
const entry = join(__dirname, '..', '..', 'dist', 'main.js');

let world: TestWorld;

beforeAll(async () => {
  if (!existsSync(entry)) throw new Error(`${entry} is missing: build services/meetings first`);
  world = await createTestWorld('meetings-kill');
});

afterAll(async () => {
  await world?.close();
});

async function count(sql: string, userId: string): Promise<number> {
  const { rows } = await world.sql.query<{ n: number }>(sql, [userId]);
  return rows[0]!.n;
}

it('loses and duplicates nothing when a consumer process is killed mid-batch and restarted', async () => {
  const cal = fakeCalendlyAccount();
  const userId = `user-${randomUUID()}`;
  const bookings = Array.from({ length: 200 }, (_, index) =>
    cal.book({ start: new Date(Date.UTC(2026, 9, 1) + index * 3_600_000).toISOString() }),
  );
  const deliveries: Delivery[] = bookings.map((booking) => booking.delivery);
  const canceled = bookings.filter((_, index) => index % 2 === 0);
  for (const booking of canceled)
    deliveries.push(cal.cancel(booking.invitee, { cancelerType: 'invitee', reason: 'Cannot make it' }));
  // A backlog the consumer is in the middle of when it dies.
  await world.declareEventsStream();
  for (let index = 0; index < deliveries.length; index += 50)
    await Promise.all(
      deliveries.slice(index, index + 50).map((delivery) => world.publish(userId, cal.user.uri, delivery)),
    );

  // Messages wait in the consumer's buffer before they are handled, and JetStream redelivers any
  // not acknowledged within the ack wait: the batch must be handled well within it even on a
  // loaded machine (25 messages against 1.5 s once kept redelivering the buffer and never drained),
  // while the wait stays short enough that the killed process's messages come back soon.
  const env = world.env({ CONSUMER_BATCH_SIZE: '10', CONSUMER_ACK_WAIT_MS: '4000', SHUTDOWN_TIMEOUT_MS: '5000' });
  const first = await spawnService({ entry, env });
  let appliedAtKill: number;
  let unacknowledgedAtKill: number;
  try {
    await inboxReaches(world, [userId], 30, 60_000);
    await first.kill();
    appliedAtKill = await count('SELECT count(*)::int AS n FROM inbox WHERE user_id = $1', userId);
    unacknowledgedAtKill = (await world.jsm.consumers.info(world.names.eventsStream, 'meetings')).num_ack_pending;
  } finally {
    await first.kill();
  }
  expect(first.child.signalCode).toBe('SIGKILL');
  // It died with work in hand: deliveries it had been given and never acknowledged.
  expect(appliedAtKill).toBeLessThan(deliveries.length);
  expect(unacknowledgedAtKill).toBeGreaterThan(0);

  const second = await spawnService({ entry, env });
  try {
    await inboxReaches(world, [userId], deliveries.length, 120_000);
    await waitFor(
      async () => {
        const info = await world.jsm.consumers.info(world.names.eventsStream, 'meetings');
        return info.num_pending === 0 && info.num_ack_pending === 0;
      },
      { what: 'the consumer to drain', timeoutMs: 30_000 },
    );
  } finally {
    expect(await second.stop()).toBe(0);
  }

  expect(await count('SELECT count(*)::int AS n FROM inbox WHERE user_id = $1', userId)).toBe(deliveries.length);
  expect(await count('SELECT count(*)::int AS n FROM meetings WHERE user_id = $1', userId)).toBe(bookings.length);
  expect(await count('SELECT count(*)::int AS n FROM invitees WHERE user_id = $1', userId)).toBe(bookings.length);
  const { rows } = await world.sql.query<{ scheduled_event_uri: string; status: string }>(
    'SELECT scheduled_event_uri, status FROM meetings WHERE user_id = $1',
    [userId],
  );
  const canceledUris = new Set(canceled.map((booking) => booking.event.uri));
  for (const row of rows) expect(row.status).toBe(canceledUris.has(row.scheduled_event_uri) ? 'canceled' : 'active');
  const deadLetters = await world.jsm.streams.info(world.names.deadLetterStream);
  expect(deadLetters.state.messages).toBe(0);
}, 240_000);
