import { randomUUID } from 'node:crypto';
import { eventsV1 } from '@calsync/proto';
import { Client } from 'pg';
import { fakeCalendlyAccount, toCalendlyEvent } from '../../test/calendly-fixtures';
import {
  allMeetings,
  createTestWorld,
  waitFor,
  inboxReaches,
  readDeadLetters,
  startMeetings,
  type RunningMeetings,
  type TestWorld,
} from '../../test/harness';

let world: TestWorld;

beforeAll(async () => {
  world = await createTestWorld('meetings-dlq');
});

afterAll(async () => {
  await world?.close();
});

const deadLetters = () => readDeadLetters(world);

function eventOf(letter: eventsV1.DeadLetter): eventsV1.CalendlyEvent {
  return eventsV1.CalendlyEvent.decode(letter.originalData);
}

async function withMeetings(
  overrides: Record<string, string>,
  work: (meetings: RunningMeetings) => Promise<void>,
): Promise<void> {
  const meetings = await startMeetings(world, overrides);
  try {
    await work(meetings);
  } finally {
    await meetings.stop();
  }
}

describe('dead letters', () => {
  it('dead-letters a malformed delivery at once, with its reason and the original, and applies the ones behind it', async () => {
    await withMeetings({}, async (meetings) => {
      const cal = fakeCalendlyAccount();
      const userId = `user-${randomUUID()}`;
      const notJson = toCalendlyEvent(userId, cal.user.uri, {
        ...cal.book({ start: '2026-06-01T10:00:00Z' }).delivery,
        body: Buffer.from('{"event":"invitee.created","payload":'),
      });
      const notJsonBytes = eventsV1.CalendlyEvent.encode(notJson).finish();
      const noScheduledEvent = toCalendlyEvent(userId, cal.user.uri, {
        ...cal.book({ start: '2026-06-01T11:00:00Z' }).delivery,
        body: Buffer.from(
          JSON.stringify({
            event: 'invitee.created',
            created_at: '2026-05-01T09:00:00.000000Z',
            payload: { uri: 'https://api.calendly.com/scheduled_events/x/invitees/y' },
          }),
        ),
      });
      const subject = world.names.eventSubject('invitee.created');
      await world.publishRaw(subject, notJsonBytes, notJson.deliveryKey);
      await world.publishRaw(subject, Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff]), 'truncated-protobuf');
      await world.publishRaw(
        subject,
        eventsV1.CalendlyEvent.encode(noScheduledEvent).finish(),
        noScheduledEvent.deliveryKey,
      );
      const good = [cal.book({ start: '2026-06-02T10:00:00Z' }), cal.book({ start: '2026-06-03T10:00:00Z' })];
      for (const booking of good) await world.publish(userId, cal.user.uri, booking.delivery);

      await inboxReaches(world, [userId], 2);
      const letters = await waitFor(async () => {
        const found = await deadLetters();
        return found.length === 3 ? found : undefined;
      });
      expect(letters.map((letter) => letter.deliveries)).toEqual([1, 1, 1]);
      expect(letters.every((letter) => letter.originalSubject === subject)).toBe(true);
      expect(letters[0]!.reason).toBe('payload is not JSON');
      expect(Buffer.from(letters[0]!.originalData)).toEqual(Buffer.from(notJsonBytes));
      expect(eventOf(letters[0]!).deliveryKey).toBe(notJson.deliveryKey);
      expect(letters[1]!.reason).toMatch(/not a calsync\.events\.v1\.CalendlyEvent/);
      expect(letters[2]!.reason).toMatch(/payload\.scheduled_event/);
      expect(letters[2]!.deadLetteredAt).toBeInstanceOf(Date);

      expect((await allMeetings(meetings.client, userId)).map((meeting) => meeting.scheduledEventUri).sort()).toEqual(
        good.map((booking) => booking.event.uri).sort(),
      );
      expect(await meetings.counter('meetings_dead_lettered_total', 'cause="permanent"')).toBe(3);
      const consumer = await world.jsm.consumers.info(world.names.eventsStream, 'meetings');
      expect(consumer.num_pending + consumer.num_ack_pending).toBe(0);
    });
  });

  it('retries a delivery that keeps failing with back-off, then dead-letters it, without holding up the others', async () => {
    // Postgres refuses this one user's invitees: a failure no redelivery can fix, yet not malformed.
    const cursed = `cursed-${randomUUID()}`;
    await withMeetings({ CONSUMER_MAX_DELIVER: '3', CONSUMER_BACKOFF_MS: '600,900' }, async (meetings) => {
      await world.sql.query(`
        CREATE FUNCTION refuse_cursed() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF NEW.user_id = '${cursed}' THEN RAISE EXCEPTION 'invitee refused for this test'; END IF;
          RETURN NEW;
        END $$;
        CREATE TRIGGER refuse_cursed BEFORE INSERT ON invitees FOR EACH ROW EXECUTE FUNCTION refuse_cursed();`);
      try {
        const cal = fakeCalendlyAccount();
        const before = (await deadLetters()).length;
        const poison = cal.book({ start: '2026-06-04T10:00:00Z' });
        await world.publish(cursed, cal.user.uri, poison.delivery);
        const others = `user-${randomUUID()}`;
        for (let day = 10; day < 15; day++)
          await world.publish(others, cal.user.uri, cal.book({ start: `2026-06-${day}T10:00:00Z` }).delivery);

        await inboxReaches(world, [others], 5);
        // The others are in while the failing one still waits for its next attempt.
        expect(await deadLetters()).toHaveLength(before);

        const letter = await waitFor(async () => (await deadLetters())[before], { what: 'the dead letter' });
        expect(letter.deliveries).toBe(3);
        expect(letter.reason).toMatch(/^failed 3 deliveries; last error: invitee refused for this test/);
        expect(eventOf(letter).userId).toBe(cursed);
        const { rows } = await world.sql.query('SELECT 1 FROM meetings WHERE user_id = $1', [cursed]);
        expect(rows).toEqual([]);
        expect(await meetings.counter('meetings_dead_lettered_total', 'cause="exhausted"')).toBe(1);
        expect(meetings.lines.filter((line) => line.includes('message failed; will retry'))).toHaveLength(2);
      } finally {
        await world.sql.query('DROP TRIGGER refuse_cursed ON invitees; DROP FUNCTION refuse_cursed();');
      }
    });
  });

  it('dead-letters a message whose every delivery timed out unacknowledged', async () => {
    await withMeetings({ CONSUMER_MAX_DELIVER: '2', CONSUMER_ACK_WAIT_MS: '800' }, async () => {
      const cal = fakeCalendlyAccount();
      const userId = `user-${randomUUID()}`;
      const before = (await deadLetters()).length;
      const booking = cal.book({ start: '2026-06-20T10:00:00Z' });
      // Hold the meetings table so the consumer hangs on this message past every ack deadline.
      const blocker = await world.sql.connect();
      try {
        await blocker.query('BEGIN');
        await blocker.query('LOCK TABLE meetings IN ACCESS EXCLUSIVE MODE');
        await world.publish(userId, cal.user.uri, booking.delivery);
        const letter = await waitFor(async () => (await deadLetters())[before], {
          what: 'the dead letter',
          timeoutMs: 15_000,
        });
        expect(letter.reason).toMatch(/delivered 2 times without an acknowledgement/);
        expect(eventOf(letter).deliveryKey).toBe(toCalendlyEvent(userId, cal.user.uri, booking.delivery).deliveryKey);
      } finally {
        await blocker.query('ROLLBACK');
        blocker.release();
      }
      // Once the database answers again, the hung attempt finishes; the redelivery is a duplicate.
      await inboxReaches(world, [userId], 1);
    });
  });
});

describe('outages', () => {
  async function admin(sql: string): Promise<void> {
    const client = new Client({ connectionString: process.env.CALSYNC_TEST_DATABASE_URL });
    await client.connect();
    try {
      await client.query(sql);
    } finally {
      await client.end();
    }
  }

  it('holds a message through a database outage without spending its deliveries', async () => {
    await withMeetings({ CONSUMER_MAX_DELIVER: '2', CONSUMER_ACK_WAIT_MS: '800' }, async (meetings) => {
      const cal = fakeCalendlyAccount();
      const userId = `user-${randomUUID()}`;
      const before = (await deadLetters()).length;
      const database = world.db.name;
      // The service's connections are cut and new ones refused; the test keeps its own.
      await world.sql.query('SELECT 1');
      await admin(`ALTER DATABASE ${database} WITH ALLOW_CONNECTIONS false`);
      try {
        await admin(
          `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '${database}' AND application_name = 'meetings'`,
        );
        await world.publish(userId, cal.user.uri, cal.book({ start: '2026-06-25T10:00:00Z' }).delivery);
        await waitFor(async () => meetings.lines.some((line) => line.includes('pausing: a dependency')) || undefined, {
          what: 'the consumer to pause',
        });
        // Held through more than all its deliveries would last if each ack wait were spent: the
        // worker tells JetStream it is still in hand every third of the ack wait, and each such
        // keep-alive moves the consumer's last_active. Seen 3 x (max deliver + 1) times, the hold
        // spans more than (max deliver + 1) ack waits, and the message was never handed out again.
        const { CONSUMER_DURABLE_NAME: durable, CONSUMER_MAX_DELIVER: maxDeliver } = meetings.config;
        const keepAlives = new Set<unknown>();
        let deliveredAs: number | undefined;
        await waitFor(
          async () => {
            const info = await world.jsm.consumers.info(world.names.eventsStream, durable);
            expect(info.num_redelivered).toBe(0);
            expect(info.num_ack_pending).toBe(1);
            deliveredAs ??= info.delivered.consumer_seq;
            expect(info.delivered.consumer_seq).toBe(deliveredAs);
            keepAlives.add(info.delivered.last_active);
            return keepAlives.size > 3 * (maxDeliver + 1) || undefined;
          },
          { what: 'the message kept in hand past its ack waits', timeoutMs: 30_000 },
        );
      } finally {
        await admin(`ALTER DATABASE ${database} WITH ALLOW_CONNECTIONS true`);
      }
      await inboxReaches(world, [userId], 1);
      expect(await deadLetters()).toHaveLength(before);
      expect(meetings.lines.some((line) => line.includes('"msg":"resuming"'))).toBe(true);
    });
  });
});

describe('several instances', () => {
  it('share one durable consumer and apply every delivery exactly once', async () => {
    // A world of its own: nothing published by the tests above reaches these instances.
    const shared = await createTestWorld('meetings-shared');
    const overrides = { CONSUMER_BATCH_SIZE: '5' };
    const first = await startMeetings(shared, overrides);
    const second = await startMeetings(shared, overrides);
    try {
      const cal = fakeCalendlyAccount();
      const userId = `user-${randomUUID()}`;
      const total = 120;
      await Promise.all(
        Array.from({ length: total }, (_, index) =>
          shared.publish(
            userId,
            cal.user.uri,
            cal.book({ start: new Date(Date.UTC(2026, 8, 1) + index * 3_600_000).toISOString() }).delivery,
          ),
        ),
      );
      // One user's changes commit one at a time (their change-feed order): not quick on a loaded machine.
      await inboxReaches(shared, [userId], total, 60_000);
      const applied = (meetings: RunningMeetings) => meetings.counter('meetings_events_applied_total');
      const [byFirst, bySecond] = [await applied(first), await applied(second)];
      expect(byFirst).toBeGreaterThan(0);
      expect(bySecond).toBeGreaterThan(0);
      expect(byFirst + bySecond).toBe(total);
      expect(await allMeetings(first.client, userId)).toHaveLength(total);
    } finally {
      await Promise.all([first.stop(), second.stop()]);
      await shared.close();
    }
  });
});
