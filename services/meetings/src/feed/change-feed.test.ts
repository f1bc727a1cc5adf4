import { randomUUID } from 'node:crypto';
import { eventsV1, meetingsV1 } from '@calsync/proto';
import { createLogger, GrpcStatus } from '@calsync/service-kit';
import { Pool } from 'pg';
import { fakeCalendlyAccount, toCalendlyEvent } from '../../test/calendly-fixtures';
import {
  createTestWorld,
  startMeetings,
  waitFor,
  type MeetingsClient,
  type RunningMeetings,
  type TestWorld,
} from '../../test/harness';
import { createChangeFeed } from './feed-stream';
import { createOutboxRelay, type PublishChange } from './outbox-relay';

const { MeetingChangeKind: Kind } = meetingsV1;

let world: TestWorld;
let meetings: RunningMeetings;

beforeAll(async () => {
  world = await createTestWorld('meetings-feed');
  await world.declareEventsStream();
  meetings = await startMeetings(world, { CONSUMER_MAX_DELIVER: '2', CONSUMER_BACKOFF_MS: '50' });
});

afterAll(async () => {
  await meetings?.stop();
  await world?.close();
});

const newUser = () => `user-${randomUUID()}`;

/** A relay of the test's own over `pool`, on the tests' relay lock unless `lockName` names another. */
const testRelay = (pool: Pool, options: { publish: PublishChange; pollMs: number; lockName?: string }) =>
  createOutboxRelay({
    pool,
    databaseUrl: world.db.url,
    lockName: options.lockName ?? `test:${world.prefix}`,
    log: createLogger({ service: 'relay-test', level: 'silent' }),
    publish: options.publish,
    pollMs: options.pollMs,
  });

/** An outbox row's message, as a relay test writes it straight into the outbox. */
const changeMessage = (changeId: string, userId: string) =>
  meetingsV1.MeetingChanged.encode({
    changeId,
    userId,
    kind: Kind.MEETING_CHANGE_KIND_UPDATED,
    meetingId: randomUUID(),
    scheduledEventUri: 'https://api.calendly.com/scheduled_events/x',
    changedAt: new Date(),
    eventType: 'invitee.created',
  }).finish();

/** A watch that keeps what it receives until stopped. */
function watch(client: MeetingsClient, request: Partial<meetingsV1.WatchMeetingsRequest>) {
  const cancel = new AbortController();
  const responses: meetingsV1.WatchMeetingsResponse[] = [];
  let failure: unknown;
  const done = (async () => {
    try {
      for await (const response of client.watchMeetings(
        { userId: '', allUsers: false, resumeFrom: '', ...request },
        { signal: cancel.signal },
      ))
        responses.push(response);
    } catch (error) {
      failure = error;
    }
  })();
  return {
    responses,
    changes: () => responses.flatMap((response) => (response.change ? [response.change] : [])),
    failure: () => failure,
    /** Resolves once the watch is live (its first response arrived). */
    live: () => waitFor(() => responses.length > 0 || failure !== undefined, { what: 'the watch to start' }),
    async stop() {
      cancel.abort();
      await done;
    },
  };
}

async function failureOf(client: MeetingsClient, request: Partial<meetingsV1.WatchMeetingsRequest>) {
  const watcher = watch(client, request);
  await waitFor(() => watcher.failure(), { what: 'the watch to fail' });
  await watcher.stop();
  return watcher.failure() as { code: number; details: string };
}

describe('the change feed', () => {
  it('publishes exactly one MeetingChanged per committed change, in order, to that user only', async () => {
    const alice = newUser();
    const bob = newUser();
    const cal = fakeCalendlyAccount();
    const other = fakeCalendlyAccount();
    const aliceWatch = watch(meetings.client, { userId: alice });
    const everyone = watch(meetings.client, { allUsers: true });
    await aliceWatch.live();
    await everyone.live();

    const booking = cal.book({ start: '2026-06-01T10:00:00.000000Z' });
    await world.publish(alice, cal.user.uri, booking.delivery);
    await world.publish(bob, other.user.uri, other.book({ start: '2026-06-02T10:00:00.000000Z' }).delivery);
    // The same delivery again under another message id: the inbox knows it, nothing changes.
    const again = toCalendlyEvent(alice, cal.user.uri, booking.delivery);
    await world.publishRaw(
      world.names.eventSubject(again.eventType),
      eventsV1.CalendlyEvent.encode(again).finish(),
      `redelivery-${randomUUID()}`,
    );
    await world.publish(alice, cal.user.uri, cal.markNoShow(booking.invitee));
    await world.publish(alice, cal.user.uri, cal.cancel(booking.invitee, { cancelerType: 'host', reason: 'ill' }));

    await waitFor(() => aliceWatch.changes().length >= 3, { what: "alice's three changes" });
    await waitFor(() => everyone.changes().length >= 4, { what: 'four changes for everyone' });
    const { rows } = await world.sql.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM inbox WHERE user_id = $1 AND event_type = 'invitee.created'",
      [alice],
    );
    expect(rows[0]!.n).toBe(1);
    await aliceWatch.stop();
    await everyone.stop();

    const changes = aliceWatch.changes();
    expect(changes.map((change) => change.kind)).toEqual([
      Kind.MEETING_CHANGE_KIND_CREATED,
      Kind.MEETING_CHANGE_KIND_NO_SHOW,
      Kind.MEETING_CHANGE_KIND_CANCELED,
    ]);
    expect(new Set(changes.map((change) => change.changeId)).size).toBe(3);
    for (const change of changes) {
      expect(change.userId).toBe(alice);
      expect(change.meeting?.scheduledEventUri).toBe(booking.event.uri);
    }
    expect(changes[1]!.meeting?.invitees[0]?.noShow).toBe(true);
    expect(changes[2]!.meeting?.status).toBe(meetingsV1.MeetingStatus.MEETING_STATUS_CANCELED);
    expect(everyone.changes().filter((change) => change.userId === bob)).toHaveLength(1);
    expect(everyone.changes().filter((change) => change.userId === alice)).toHaveLength(3);
    // Nothing is left waiting in the outbox once published.
    await waitFor(async () => (await world.sql.query('SELECT 1 FROM outbox')).rowCount === 0, {
      what: 'an empty outbox',
    });
  });

  it('names a reschedule as such and the new time as a new meeting', async () => {
    const user = newUser();
    const cal = fakeCalendlyAccount();
    const watcher = watch(meetings.client, { userId: user });
    await watcher.live();
    const booking = cal.book({ start: '2026-06-03T10:00:00.000000Z' });
    await world.publish(user, cal.user.uri, booking.delivery);
    const moved = cal.reschedule(booking.invitee, '2026-06-04T10:00:00.000000Z');
    await world.publish(user, cal.user.uri, moved.canceled);
    await world.publish(user, cal.user.uri, moved.created);
    await waitFor(() => watcher.changes().length >= 3, { what: 'three changes' });
    await watcher.stop();
    const kinds = watcher.changes().map((change) => [change.kind, change.scheduledEventUri]);
    expect(kinds).toEqual([
      [Kind.MEETING_CHANGE_KIND_CREATED, booking.event.uri],
      [Kind.MEETING_CHANGE_KIND_RESCHEDULED, booking.event.uri],
      [Kind.MEETING_CHANGE_KIND_CREATED, moved.event.uri],
    ]);
  });

  it('writes no event for a change that rolled back', async () => {
    const user = newUser();
    const cal = fakeCalendlyAccount();
    // The database refuses this one change at its last write (the outbox row), so the whole
    // transaction rolls back: meeting, invitee, inbox key and event alike.
    await world.sql.query(`
      CREATE OR REPLACE FUNCTION refuse_doomed() RETURNS trigger AS $$
      BEGIN
        IF position('doomed@example.com' in convert_from(NEW.message, 'LATIN1')) > 0 THEN
          RAISE EXCEPTION 'refused by the test';
        END IF;
        RETURN NEW;
      END $$ LANGUAGE plpgsql;
      CREATE TRIGGER refuse_doomed BEFORE INSERT ON outbox FOR EACH ROW EXECUTE FUNCTION refuse_doomed();`);
    try {
      const watcher = watch(meetings.client, { userId: user });
      await watcher.live();
      const doomed = cal.book({ start: '2026-06-05T10:00:00.000000Z', email: 'doomed@example.com' });
      await world.publish(user, cal.user.uri, doomed.delivery);
      await waitFor(() => meetings.counter('meetings_dead_lettered_total', 'consumer="events"').then((n) => n >= 1), {
        what: 'the doomed delivery to be given up',
      });
      const fine = cal.book({ start: '2026-06-06T10:00:00.000000Z' });
      await world.publish(user, cal.user.uri, fine.delivery);
      await waitFor(() => watcher.changes().length >= 1, { what: 'the good change' });
      await watcher.stop();
      expect(watcher.changes().map((change) => change.scheduledEventUri)).toEqual([fine.event.uri]);
      const { rows } = await world.sql.query('SELECT 1 FROM meetings WHERE scheduled_event_uri = $1', [
        doomed.event.uri,
      ]);
      expect(rows).toHaveLength(0);
    } finally {
      await world.sql.query('DROP TRIGGER IF EXISTS refuse_doomed ON outbox');
    }
  });

  it('stores a change once when the relay died between publishing it and deleting its row', async () => {
    const user = newUser();
    const feed = createChangeFeed({ js: world.js, jsm: world.jsm, names: world.names });
    const pool = new Pool({ connectionString: world.db.url, max: 2, options: '-c search_path=meetings' });
    const changeId = randomUUID();
    const message = changeMessage(changeId, user);
    // The running service's relay must not take this row: the test plays a relay that crashes.
    await meetings.stop();
    try {
      await pool.query('INSERT INTO outbox (change_id, user_id, message) VALUES ($1, $2, $3)', [
        changeId,
        user,
        Buffer.from(message),
      ]);
      let crashes = 1;
      const crashing = testRelay(pool, {
        publish: async (userId, data, id) => {
          await feed.publish(userId, data, id);
          if (crashes-- > 0) throw new Error('the relay died before deleting the row');
        },
        pollMs: 50,
      });
      crashing.start();
      await waitFor(async () => (await pool.query('SELECT 1 FROM outbox')).rowCount === 0, {
        what: 'the row to be published again and deleted',
      });
      await crashing.stop();
      const info = await world.jsm.streams.info(world.names.meetingsChangedStream, {
        subjects_filter: world.names.meetingsChangedSubject(user),
      });
      expect(info.state.subjects?.[world.names.meetingsChangedSubject(user)]).toBe(1);
    } finally {
      await pool.end();
      meetings = await startMeetings(world, { CONSUMER_MAX_DELIVER: '2', CONSUMER_BACKOFF_MS: '50' });
    }
  });

  it("deletes what it published with the next wake-up's read, one statement a wake-up, and the rest at stop", async () => {
    const user = newUser();
    const feed = createChangeFeed({ js: world.js, jsm: world.jsm, names: world.names });
    const pool = new Pool({ connectionString: world.db.url, max: 2, options: '-c search_path=meetings' });
    const sql = new Pool({ connectionString: world.db.url, max: 1, options: '-c search_path=meetings' });
    const changeIds = [randomUUID(), randomUUID()];
    const insert = (changeId: string) =>
      // As the applier's change does: the row and its NOTIFY, committed together.
      sql.query(
        `WITH change AS (INSERT INTO outbox (change_id, user_id, message) VALUES ($1, $2, $3) RETURNING 1)
         SELECT pg_notify('meetings_outbox', '') FROM change`,
        [changeId, user, Buffer.from(changeMessage(changeId, user))],
      );
    const outboxIds = async () =>
      (
        await sql.query<{ change_id: string }>('SELECT change_id FROM outbox WHERE user_id = $1 ORDER BY seq', [user])
      ).rows.map((row) => row.change_id);
    const published: string[] = [];
    await meetings.stop();
    const queries = jest.spyOn(pool, 'query');
    // No timer in this test: only NOTIFY (and the first tick) wakes the relay.
    const relay = testRelay(pool, {
      publish: async (userId, data, id) => {
        await feed.publish(userId, data, id);
        published.push(id);
      },
      pollMs: 600_000,
    });
    try {
      relay.start();
      await waitFor(() => queries.mock.calls.length > 0, { what: 'the relay to lead' });
      // Taking the lead, it reads what is waiting: that read must be over before the test writes.
      // Run after the insert's commit, it would publish the first change, and the wake-up the
      // insert's NOTIFY queued meanwhile would read again and delete it (seen in CI).
      await queries.mock.results[0]!.value;
      await new Promise((resolve) => setImmediate(resolve));
      await insert(changeIds[0]!);
      await waitFor(() => published.length === 1, { what: 'the first change published' });
      expect(await outboxIds()).toEqual([changeIds[0]]);
      const before = queries.mock.calls.length;
      await insert(changeIds[1]!);
      await waitFor(() => published.length === 2, { what: 'the second change published' });
      // The wake-up that published the second change deleted the first, in its one statement.
      expect(await outboxIds()).toEqual([changeIds[1]]);
      expect(queries.mock.calls.length - before).toBe(1);
      await relay.stop();
      expect(await outboxIds()).toEqual([]);
      expect(published).toEqual(changeIds);
      const info = await world.jsm.streams.info(world.names.meetingsChangedStream, {
        subjects_filter: world.names.meetingsChangedSubject(user),
      });
      expect(info.state.subjects?.[world.names.meetingsChangedSubject(user)]).toBe(2);
    } finally {
      await relay.stop();
      await pool.end();
      await sql.end();
      meetings = await startMeetings(world, { CONSUMER_MAX_DELIVER: '2', CONSUMER_BACKOFF_MS: '50' });
    }
  });

  it('gives its lock back when stopped while it was taking the lead', async () => {
    // Stopped between taking the lock and starting to listen, the relay once kept its session,
    // and with it the lock: no replica could relay again until the process exited. Stopping as
    // soon as the lock shows held lands in that moment often enough, over rounds, to catch it.
    const lockName = `test-stop:${randomUUID()}`;
    const pool = new Pool({ connectionString: world.db.url, max: 1, options: '-c search_path=meetings' });
    const sql = new Pool({ connectionString: world.db.url, max: 1 });
    const lockHeld = async () =>
      (
        await sql.query(
          `SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 2
              AND classid = oid(hashtext($1)::bigint & 4294967295) AND objid = oid(hashtext($2)::bigint & 4294967295)`,
          ['meetings.outbox-relay', lockName],
        )
      ).rowCount === 1;
    try {
      for (let round = 0; round < 20; round++) {
        const relay = testRelay(pool, { publish: async () => undefined, pollMs: 600_000, lockName });
        relay.start();
        await waitFor(lockHeld, { what: 'the relay to take its lock', intervalMs: 0 });
        await relay.stop();
        expect(await lockHeld()).toBe(false);
      }
    } finally {
      await pool.end();
      await sql.end();
    }
  });

  it('resumes from a cursor with nothing lost or repeated, and refuses cursors it cannot honour', async () => {
    const user = newUser();
    const cal = fakeCalendlyAccount();
    const first = watch(meetings.client, { userId: user });
    await first.live();
    const bookings = [1, 2, 3, 4].map((n) => cal.book({ start: `2026-07-0${n}T10:00:00.000000Z` }));
    for (const booking of bookings.slice(0, 2)) await world.publish(user, cal.user.uri, booking.delivery);
    await waitFor(() => first.changes().length >= 2, { what: 'two changes' });
    await first.stop();
    const cursor = first.responses.at(-1)!.cursor;

    // Changes made while nobody watches arrive on resume, and none twice.
    for (const booking of bookings.slice(2)) await world.publish(user, cal.user.uri, booking.delivery);
    await waitFor(
      async () => (await world.sql.query('SELECT 1 FROM meetings WHERE user_id = $1', [user])).rowCount === 4,
      {
        what: 'four meetings',
      },
    );
    const resumed = watch(meetings.client, { userId: user, resumeFrom: cursor });
    await waitFor(() => resumed.changes().length >= 2, { what: 'the two missed changes' });
    const more = cal.cancel(bookings[3]!.invitee, { cancelerType: 'invitee', reason: 'no' });
    await world.publish(user, cal.user.uri, more);
    await waitFor(() => resumed.changes().length >= 3, { what: 'the live change after the missed ones' });
    await resumed.stop();
    const seen = [...first.changes(), ...resumed.changes()];
    expect(seen.map((change) => change.scheduledEventUri)).toEqual([
      ...bookings.map((b) => b.event.uri),
      bookings[3]!.event.uri,
    ]);
    expect(new Set(seen.map((change) => change.changeId)).size).toBe(5);

    expect(await failureOf(meetings.client, { userId: user, resumeFrom: 'not-a-cursor' })).toMatchObject({
      code: GrpcStatus.INVALID_ARGUMENT,
      details: expect.stringContaining('re-list'),
    });
    const foreign = cursor.replace(/\.[0-9a-f]{12}$/, '.000000000000');
    expect(await failureOf(meetings.client, { userId: user, resumeFrom: foreign })).toMatchObject({
      code: GrpcStatus.FAILED_PRECONDITION,
      details: expect.stringContaining('re-list'),
    });
    expect(await failureOf(meetings.client, { userId: '', allUsers: false })).toMatchObject({
      code: GrpcStatus.INVALID_ARGUMENT,
    });
    expect(await failureOf(meetings.client, { userId: user, allUsers: true })).toMatchObject({
      code: GrpcStatus.INVALID_ARGUMENT,
    });

    // The feed no longer keeps what came after the first cursor: the caller must re-list.
    const info = await world.jsm.streams.info(world.names.meetingsChangedStream);
    await world.jsm.streams.purge(world.names.meetingsChangedStream, { seq: info.state.last_seq });
    expect(await failureOf(meetings.client, { userId: user, resumeFrom: first.responses[0]!.cursor })).toMatchObject({
      code: GrpcStatus.OUT_OF_RANGE,
      details: expect.stringContaining('re-list'),
    });
  });
});
