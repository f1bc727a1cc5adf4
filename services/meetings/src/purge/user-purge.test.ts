import { randomUUID } from 'node:crypto';
import { eventsV1 } from '@calsync/proto';
import { GrpcStatus } from '@calsync/service-kit';
import { fakeCalendlyAccount, toCalendlyEvent } from '../../test/calendly-fixtures';
import {
  allMeetings,
  createTestWorld,
  inboxReaches,
  readDeadLetters,
  startMeetings,
  waitFor,
  type RunningMeetings,
  type TestWorld,
} from '../../test/harness';
import { userTables } from './user-purge';

let world: TestWorld;
let meetings: RunningMeetings;
const users = { a: `a-${randomUUID()}`, b: `b-${randomUUID()}` };
const cal = { a: fakeCalendlyAccount(), b: fakeCalendlyAccount() };

/** How many messages of each stream decode to something of `userId`'s. */
async function streamCounts(userId: string): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  const { names, jsm } = world;
  for (const stream of [
    names.eventsStream,
    names.backfillStream,
    names.deadLetterStream,
    names.meetingsChangedStream,
  ]) {
    const info = await jsm.streams.info(stream);
    let n = 0;
    for (let seq = info.state.first_seq; info.state.messages > 0 && seq <= info.state.last_seq; seq++) {
      const stored = await jsm.streams.getMessage(stream, { seq }).catch(() => undefined);
      if (stored && Buffer.from(stored.data).includes(Buffer.from(userId))) n++;
    }
    counts[stream] = n;
  }
  return counts;
}

async function tableCounts(userId: string): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const table of userTables) {
    const { rows } = await world.sql.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM ${table} WHERE user_id = $1`,
      [userId],
    );
    counts[table] = rows[0]!.n;
  }
  return counts;
}

beforeAll(async () => {
  world = await createTestWorld('meetings-purge');
  await world.declareEventsStream();
  meetings = await startMeetings(world);
  for (const key of ['a', 'b'] as const) {
    const userId = users[key];
    for (const start of ['2026-07-01T10:00:00Z', '2026-07-02T10:00:00Z'])
      await world.publish(userId, cal[key].user.uri, cal[key].book({ start }).delivery);
    const broken = toCalendlyEvent(userId, cal[key].user.uri, {
      ...cal[key].book({ start: '2026-07-03T10:00:00Z' }).delivery,
      body: Buffer.from('{"event":"invitee.created","payload":'),
    });
    await world.publishRaw(
      world.names.eventSubject(broken.eventType),
      eventsV1.CalendlyEvent.encode(broken).finish(),
      broken.deliveryKey,
    );
    await world.publishRaw(
      world.names.backfillSubject,
      eventsV1.BackfillRequested.encode({
        requestId: `request-${userId}`,
        userId,
        calendlyUserUri: cal[key].user.uri,
        reason: 'test',
        kind: eventsV1.BackfillKind.BACKFILL_KIND_GAP,
      }).finish(),
      `request-${userId}`,
    );
  }
  await inboxReaches(world, [users.a, users.b], 4);
  await waitFor(async () => ((await readDeadLetters(world)).length >= 4 ? true : undefined), {
    what: 'the dead letters',
  });
  // Quiet before the counts: every change relayed to the feed.
  await waitFor(
    async () => ((await world.sql.query('SELECT 1 FROM outbox LIMIT 1')).rows.length === 0 ? true : undefined),
    { what: 'the outbox relayed' },
  );
}, 60_000);

afterAll(async () => {
  await meetings?.stop();
  await world?.close();
});

it("erases the user's rows and stream messages, and nobody else's", async () => {
  const before = await streamCounts(users.a);
  expect(Object.values(before).every((count) => count > 0)).toBe(true);
  const keptStreams = await streamCounts(users.b);
  const keptTables = await tableCounts(users.b);
  const keptMeetings = await allMeetings(meetings.client, users.b);

  const result = await meetings.client.purgeUser({ userId: users.a });
  expect(result.rowsDeleted).toBeGreaterThan(0);
  expect(result.messagesDeleted).toBe(Object.values(before).reduce((sum, count) => sum + count, 0));

  expect(Object.values(await tableCounts(users.a)).every((count) => count === 0)).toBe(true);
  expect(Object.values(await streamCounts(users.a)).every((count) => count === 0)).toBe(true);
  expect(await tableCounts(users.b)).toEqual(keptTables);
  expect(await streamCounts(users.b)).toEqual(keptStreams);
  expect(await allMeetings(meetings.client, users.b)).toEqual(keptMeetings);

  expect(await meetings.client.purgeUser({ userId: users.a })).toEqual({ rowsDeleted: 0, messagesDeleted: 0 });
});

it.each([
  ['no user', ''],
  ['a user id over 200 characters', 'u'.repeat(201)],
  ['a user id with a control character', 'user\n1'],
])('refuses %s with INVALID_ARGUMENT', async (_label, userId) => {
  await expect(meetings.client.purgeUser({ userId })).rejects.toMatchObject({ code: GrpcStatus.INVALID_ARGUMENT });
});
