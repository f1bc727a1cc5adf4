import { randomUUID } from 'node:crypto';
import { meetingsV1 } from '@calsync/proto';
import { connectDedicated, createLogger, createPool, inTransaction, type Pool } from '@calsync/service-kit';
import { createTestDatabase, waitFor, type TestDatabase } from '@calsync/service-kit/testing';
import { deliveryKeyOf, fakeCalendlyAccount, type Delivery as CalendlyDelivery } from '../../test/calendly-fixtures';
import { lockUserChanges, outboxChannel } from '../feed/meeting-changes';
import { createOutboxRelay } from '../feed/outbox-relay';
import { readMeeting } from './meeting-queries';
import { toMeeting } from './meeting-proto';
import { migrateSchema } from '../migrations';
import type { Delivery } from './calendly-payload';
import { createMeetingsApplier, type MeetingsApplier } from './meetings-applier';

// The applier on its own against real Postgres: the statements that do two things at once (the
// claim that takes the user's lock, the outbox row written with the log row) keep the semantics
// of doing them one after the other, and a delivery costs the round trips it should.

const log = createLogger({ service: 'meetings-applier-test', level: 'warn' });
let database: TestDatabase;
let pool: Pool;
let other: Pool;
let applier: MeetingsApplier;
let roundTrips = 0;

beforeAll(async () => {
  database = await createTestDatabase('meetings_applier');
  await migrateSchema({ DATABASE_URL: database.url, DATABASE_SCHEMA: 'meetings' }, log);
  pool = createPool({ url: database.url, schema: 'meetings', max: 2, log });
  // A round trip ends with the server's ReadyForQuery, however many statements it carried.
  pool.on('connect', (client) => {
    (client as unknown as { connection: NodeJS.EventEmitter }).connection.on('readyForQuery', () => roundTrips++);
  });
  other = createPool({ url: database.url, schema: 'meetings', max: 2, log });
  applier = createMeetingsApplier({ pool, log });
});

afterAll(async () => {
  await pool?.end();
  await other?.end();
  await database?.drop();
});

const toDelivery = (userId: string, delivery: CalendlyDelivery): Delivery => ({
  deliveryKey: deliveryKeyOf(userId, delivery),
  userId,
  eventType: delivery.eventType,
  payload: delivery.body,
  receivedAt: new Date(),
});

const count = async (table: string, userId: string) =>
  (await other.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table} WHERE user_id = $1`, [userId])).rows[0]!.n;

/** Holds the user's change lock on another connection until `release` is called. */
async function holdUserLock(userId: string) {
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let taken!: () => void;
  const isTaken = new Promise<void>((resolve) => (taken = resolve));
  const done = inTransaction(other, async (client) => {
    await lockUserChanges(client, userId);
    taken();
    await released;
  });
  await isTaken;
  return { release, done };
}

const waitingForAdvisoryLock = async () =>
  (
    await other.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND database =
         (SELECT oid FROM pg_database WHERE datname = current_database())`,
    )
  ).rows[0]!.n;

it('costs 2 round trips for a new booking, 2 for a duplicate', async () => {
  // Each of the pool's connections parses the claim and the upsert in round trips of their own
  // the first time.
  await Promise.all(
    [1, 2].map((n) =>
      applier.apply(
        toDelivery(
          `rt-warm-${randomUUID()}`,
          fakeCalendlyAccount().book({ start: `2026-06-0${n}T10:00:00Z` }).delivery,
        ),
      ),
    ),
  );
  const userId = `rt-${randomUUID()}`;
  const { delivery } = fakeCalendlyAccount().book({ start: '2026-06-01T10:00:00Z' });
  roundTrips = 0;
  await expect(applier.apply(toDelivery(userId, delivery))).resolves.toBe('applied');
  // BEGIN + claim + lock, then before + meeting + invitee + after + status; outbox + log + COMMIT.
  expect(roundTrips).toBe(2);
  const writers = async () =>
    (
      await other.query<{ xmin: string }>(
        `SELECT xmin::text FROM meetings WHERE user_id = $1 UNION ALL SELECT xmin::text FROM invitees WHERE user_id = $1`,
        [userId],
      )
    ).rows;
  const written = await writers();
  roundTrips = 0;
  await expect(applier.apply(toDelivery(userId, delivery))).resolves.toBe('duplicate');
  // BEGIN + claim (no lock), then the upsert, which writes nothing; log + COMMIT.
  expect(roundTrips).toBe(2);
  expect(await writers()).toEqual(written);
  expect(await count('outbox', userId)).toBe(1);
  expect(await count('delivery_log', userId)).toBe(2);
});

it('records each change with the meeting exactly as a read after the commit finds it', async () => {
  // The after-snapshot comes from the upserting statement itself (its RETURNING rows and the
  // other invitees as they were): it must be what GetMeeting answers once the change committed.
  const userId = `after-${randomUUID()}`;
  const cal = fakeCalendlyAccount();
  const group = cal.book({ start: '2026-06-01T10:00:00Z', limit: 3 });
  const seat = cal.join(group.event, { name: 'Second Seat' });
  const single = cal.book({ start: '2026-06-02T10:00:00Z' });
  const moved = cal.reschedule(single.invitee, '2026-06-03T10:00:00Z');
  const steps = [
    group.delivery,
    seat.delivery,
    cal.markNoShow(group.invitee),
    cal.cancel(seat.invitee, { cancelerType: 'invitee', reason: 'cannot come' }),
    cal.cancel(group.invitee, { cancelerType: 'host', reason: 'ill' }),
    single.delivery,
    moved.canceled,
    moved.created,
  ];
  for (const [step, delivery] of steps.entries()) {
    await expect(applier.apply(toDelivery(userId, delivery))).resolves.toBe('applied');
    const { rows } = await other.query<{ message: Buffer }>(
      'SELECT message FROM outbox WHERE user_id = $1 ORDER BY seq DESC LIMIT 1',
      [userId],
    );
    const change = meetingsV1.MeetingChanged.decode(rows[0]!.message);
    const stored = await readMeeting(other, userId, 'id', change.meetingId);
    expect({ step, meeting: change.meeting }).toEqual({ step, meeting: toMeeting(stored!.meeting) });
  }
  expect(await count('outbox', userId)).toBe(steps.length);
});

it("takes the user's lock only for a fresh delivery: a duplicate waits for nobody", async () => {
  const userId = `lock-${randomUUID()}`;
  const cal = fakeCalendlyAccount();
  const first = cal.book({ start: '2026-06-01T10:00:00Z' });
  const second = cal.book({ start: '2026-06-02T10:00:00Z' });
  await expect(applier.apply(toDelivery(userId, first.delivery))).resolves.toBe('applied');

  const lock = await holdUserLock(userId);
  // The duplicate finishes while another transaction holds the user's lock.
  await expect(applier.apply(toDelivery(userId, first.delivery))).resolves.toBe('duplicate');
  // A fresh delivery claims its key, then waits for the lock before it reads or writes anything.
  const fresh = applier.apply(toDelivery(userId, second.delivery));
  await waitFor(async () => (await waitingForAdvisoryLock()) === 1, { what: 'the fresh delivery waiting' });
  expect(await count('meetings', userId)).toBe(1);
  lock.release();
  await lock.done;
  await expect(fresh).resolves.toBe('applied');
  expect(await count('meetings', userId)).toBe(2);
  expect(await count('outbox', userId)).toBe(2);
});

it('rolls the outbox row and the log row back together when their one statement fails', async () => {
  const userId = `rollback-${randomUUID()}`;
  const { delivery } = fakeCalendlyAccount().book({ start: '2026-06-01T10:00:00Z' });
  const input = toDelivery(userId, delivery);
  // Refuses this delivery's log row only (NOT VALID: the rows already there are not checked).
  await other.query(
    `ALTER TABLE delivery_log ADD CONSTRAINT refuse_test_key CHECK (delivery_key <> '${input.deliveryKey}') NOT VALID`,
  );
  try {
    await expect(applier.apply(input)).rejects.toThrow(/refuse_test_key/);
    for (const table of ['inbox', 'meetings', 'invitees', 'outbox', 'delivery_log'])
      expect({ table, rows: await count(table, userId) }).toEqual({ table, rows: 0 });
  } finally {
    await other.query('ALTER TABLE delivery_log DROP CONSTRAINT refuse_test_key');
  }
  await expect(applier.apply(input)).resolves.toBe('applied');
  for (const table of ['inbox', 'meetings', 'invitees', 'outbox', 'delivery_log'])
    expect({ table, rows: await count(table, userId) }).toEqual({ table, rows: 1 });
});

it('upserts the meeting and its invitee together: an invitee that cannot be stored leaves no meeting', async () => {
  const userId = `upsert-${randomUUID()}`;
  const { delivery } = fakeCalendlyAccount().book({ start: '2026-06-01T10:00:00Z' });
  const input = toDelivery(userId, delivery);
  await other.query(`ALTER TABLE invitees ADD CONSTRAINT refuse_test_user CHECK (user_id <> '${userId}') NOT VALID`);
  try {
    await expect(applier.apply(input)).rejects.toThrow(/refuse_test_user/);
    for (const table of ['inbox', 'meetings', 'invitees', 'outbox', 'delivery_log'])
      expect({ table, rows: await count(table, userId) }).toEqual({ table, rows: 0 });
  } finally {
    await other.query('ALTER TABLE invitees DROP CONSTRAINT refuse_test_user');
  }
  await expect(applier.apply(input)).resolves.toBe('applied');
  expect(await count('meetings', userId)).toBe(1);
  expect(await count('invitees', userId)).toBe(1);
});

it('hands its change to the relay leading in its own process: no NOTIFY, no read of the outbox, the user order kept; else it notifies', async () => {
  const userId = `wake-${randomUUID()}`;
  const cal = fakeCalendlyAccount();
  const relayed: string[] = [];
  // The relay's own pool, so its reads of the outbox can be counted.
  const relayPool = createPool({ url: database.url, schema: 'meetings', max: 2, log });
  const reads = jest.spyOn(relayPool, 'query');
  // No timer: within the test only a wake-up (a hand-over, or NOTIFY) makes the relay act.
  const relay = createOutboxRelay({
    pool: relayPool,
    databaseUrl: database.url,
    lockName: 'meetings-applier-test',
    log,
    // The earlier tests' rows are in the outbox too, and relayed as it takes the lead.
    publish: async (user, _message, changeId) => {
      if (user === userId) relayed.push(changeId);
    },
    pollMs: 600_000,
  });
  // What Postgres notifies, in commit order; a marker NOTIFY after a commit shows everything
  // that commit notified has arrived before it.
  const listener = await connectDedicated({ url: database.url, applicationName: 'applier-test-listener', log });
  const heard: string[] = [];
  listener.on('notification', (notification) => heard.push(notification.channel));
  const marker = 'applier_test_marker';
  const heardUpToMarker = async () => {
    const markers = heard.filter((channel) => channel === marker).length;
    await other.query(`SELECT pg_notify('${marker}', '')`);
    await waitFor(() => heard.filter((channel) => channel === marker).length > markers, { what: 'the marker' });
    return heard.splice(0).filter((channel) => channel !== marker);
  };
  const withRelay = createMeetingsApplier({ pool, log, relay });
  try {
    await listener.query(`LISTEN ${outboxChannel}`);
    await listener.query(`LISTEN ${marker}`);
    relay.start();
    await waitFor(() => relay.leading(), { what: 'the relay to lead' });
    // Taking the lead, it reads what was waiting and publishes it: done before the test writes,
    // or that read could take the test's first change too (published twice, the feed drops one).
    await waitFor(() => reads.mock.calls.length > 0, { what: "the relay's first read" });
    await reads.mock.results[0]!.value;
    await new Promise((resolve) => setImmediate(resolve));
    // The user's outbox rows: a relayed row stays until the relay's next read or its stop.
    const changeIds = async () =>
      (
        await other.query<{ change_id: string }>('SELECT change_id FROM outbox WHERE user_id = $1 ORDER BY seq', [
          userId,
        ])
      ).rows.map((row) => row.change_id);

    let readsBefore = reads.mock.calls.length;
    await expect(
      withRelay.apply(toDelivery(userId, cal.book({ start: '2026-06-01T10:00:00Z' }).delivery)),
    ).resolves.toBe('applied');
    const [handed] = await changeIds();
    await waitFor(() => relayed.includes(handed!), { what: 'the change relayed' });
    expect(await heardUpToMarker()).toEqual([]);
    expect(reads.mock.calls.length).toBe(readsBefore);

    // An earlier change of the user still waiting (as another replica's is until its NOTIFY
    // arrives) goes first: the hand-over becomes a read, which publishes both in order.
    const waiting = randomUUID();
    await other.query('INSERT INTO outbox (change_id, user_id, message) VALUES ($1, $2, $3)', [
      waiting,
      userId,
      Buffer.from('another replica'),
    ]);
    readsBefore = reads.mock.calls.length;
    await expect(
      withRelay.apply(toDelivery(userId, cal.book({ start: '2026-06-02T10:00:00Z' }).delivery)),
    ).resolves.toBe('applied');
    const later = (await changeIds()).at(-1)!;
    await waitFor(() => relayed.includes(later), { what: 'the later change relayed' });
    expect(relayed).toEqual([handed, waiting, later]);
    expect(reads.mock.calls.length).toBeGreaterThan(readsBefore);
    expect(await heardUpToMarker()).toEqual([]);

    // A relay that does not lead (here: stopped) is handed nothing: the change notifies.
    await relay.stop();
    expect(relay.leading()).toBe(false);
    // Stopping deleted what it had published.
    expect(await changeIds()).toEqual([]);
    await expect(
      withRelay.apply(toDelivery(userId, cal.book({ start: '2026-06-03T10:00:00Z' }).delivery)),
    ).resolves.toBe('applied');
    expect(await heardUpToMarker()).toEqual([outboxChannel]);
    const [notified] = await changeIds();
    expect(notified).not.toBe(handed);
    expect(relayed).not.toContain(notified);
  } finally {
    await relay.stop();
    await relayPool.end();
    await listener.end();
  }
});

describe('deliveries waiting for a transaction', () => {
  // One transaction at a time, its first delivery held on a user's lock that the test holds:
  // what arrives meanwhile waits, and the next transaction takes all of it.
  async function withFirstHeld(transactions: number[]) {
    const held = `held-${randomUUID()}`;
    const lock = await holdUserLock(held);
    const batched = createMeetingsApplier({
      pool,
      log,
      transactions: 1,
      observeTransaction: (deliveries) => transactions.push(deliveries),
    });
    const first = batched.apply(
      toDelivery(held, fakeCalendlyAccount().book({ start: '2026-06-01T10:00:00Z' }).delivery),
    );
    await waitFor(async () => (await waitingForAdvisoryLock()) === 1, { what: 'the first delivery waiting' });
    const release = async () => {
      lock.release();
      await lock.done;
    };
    return { batched, first, release };
  }

  it('commits together: one transaction, one commit, every outcome its own', async () => {
    const transactions: number[] = [];
    const { batched, first, release } = await withFirstHeld(transactions);
    const users = [1, 2, 3, 4].map((n) => `together-${n}-${randomUUID()}`);
    const bookings = users.map((userId) =>
      toDelivery(userId, fakeCalendlyAccount().book({ start: '2026-06-02T10:00:00Z' }).delivery),
    );
    await applier.apply(bookings[0]!);
    const waiting = bookings.map((delivery) => batched.apply(delivery));
    // Waiting, not applied: nothing of theirs is in the database yet.
    expect(await count('meetings', users[1]!)).toBe(0);
    await release();
    await expect(first).resolves.toBe('applied');
    await expect(Promise.all(waiting)).resolves.toEqual(['duplicate', 'applied', 'applied', 'applied']);
    expect(transactions).toEqual([1, 4]);
    // The rows of one transaction carry its id.
    const { rows } = await other.query<{ xmin: string }>(
      'SELECT DISTINCT xmin::text FROM meetings WHERE user_id = ANY($1::text[])',
      [users.slice(1)],
    );
    expect(rows).toHaveLength(1);
    for (const userId of users) expect(await count('outbox', userId)).toBe(1);
    // The duplicate is logged as one, beside the first delivery's entry.
    expect(await count('delivery_log', users[0]!)).toBe(2);
  });

  it("applies a user's deliveries in the order they came, in one transaction", async () => {
    const transactions: number[] = [];
    const { batched, first, release } = await withFirstHeld(transactions);
    const userId = `order-${randomUUID()}`;
    const cal = fakeCalendlyAccount();
    const booked = cal.book({ start: '2026-06-03T10:00:00Z' });
    const canceled = cal.cancel(booked.invitee, { cancelerType: 'invitee', reason: 'cannot come' });
    const otherUser = `order-other-${randomUUID()}`;
    const waiting = [
      batched.apply(toDelivery(userId, booked.delivery)),
      batched.apply(toDelivery(otherUser, fakeCalendlyAccount().book({ start: '2026-06-03T10:00:00Z' }).delivery)),
      batched.apply(toDelivery(userId, canceled)),
    ];
    await release();
    await first;
    await expect(Promise.all(waiting)).resolves.toEqual(['applied', 'applied', 'applied']);
    expect(transactions).toEqual([1, 3]);
    const { rows } = await other.query<{ message: Buffer }>(
      'SELECT message FROM outbox WHERE user_id = $1 ORDER BY seq',
      [userId],
    );
    expect(rows.map((row) => meetingsV1.MeetingChanged.decode(row.message).eventType)).toEqual([
      'invitee.created',
      'invitee.canceled',
    ]);
  });

  it('leaves a redelivery waiting beside its original to the next transaction, where it is a duplicate', async () => {
    const transactions: number[] = [];
    const { batched, first, release } = await withFirstHeld(transactions);
    const [userId, otherUser] = ['redelivered', 'beside'].map((name) => `${name}-${randomUUID()}`);
    const original = toDelivery(userId!, fakeCalendlyAccount().book({ start: '2026-06-05T10:00:00Z' }).delivery);
    const waiting = [
      batched.apply(original),
      batched.apply(toDelivery(otherUser!, fakeCalendlyAccount().book({ start: '2026-06-05T10:00:00Z' }).delivery)),
      batched.apply({ ...original }),
    ];
    await release();
    await first;
    await expect(Promise.all(waiting)).resolves.toEqual(['applied', 'applied', 'duplicate']);
    expect(transactions).toEqual([1, 2, 1]);
    expect(await count('meetings', userId!)).toBe(1);
    expect(await count('outbox', userId!)).toBe(1);
    expect(await count('delivery_log', userId!)).toBe(2);
  });

  it('applies each alone when one of them fails: only the failing delivery fails', async () => {
    const transactions: number[] = [];
    const { batched, first, release } = await withFirstHeld(transactions);
    const [good, poisoned, alsoGood] = ['good', 'poisoned', 'also-good'].map((name) => `${name}-${randomUUID()}`);
    await other.query(
      `ALTER TABLE invitees ADD CONSTRAINT refuse_poisoned_user CHECK (user_id <> '${poisoned}') NOT VALID`,
    );
    try {
      const [goodDone, poisonedDone, alsoGoodDone] = [good, poisoned, alsoGood].map((userId) =>
        batched.apply(toDelivery(userId!, fakeCalendlyAccount().book({ start: '2026-06-04T10:00:00Z' }).delivery)),
      );
      await release();
      await first;
      await expect(goodDone).resolves.toBe('applied');
      await expect(poisonedDone).rejects.toThrow(/refuse_poisoned_user/);
      await expect(alsoGoodDone).resolves.toBe('applied');
    } finally {
      await other.query('ALTER TABLE invitees DROP CONSTRAINT refuse_poisoned_user');
    }
    // The three together failed and committed nothing; then each alone: two commits.
    expect(transactions).toEqual([1, 1, 1]);
    for (const table of ['inbox', 'meetings', 'outbox', 'delivery_log']) {
      expect({ table, rows: await count(table, poisoned!) }).toEqual({ table, rows: 0 });
      expect({ table, rows: await count(table, good!) }).toEqual({ table, rows: 1 });
      expect({ table, rows: await count(table, alsoGood!) }).toEqual({ table, rows: 1 });
    }
  });
});
