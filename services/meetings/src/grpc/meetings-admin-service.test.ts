import { randomUUID } from 'node:crypto';
import { meetingsAdminV1 } from '@calsync/proto';
import { grpcIdentities, GrpcStatus, type PromiseClient } from '@calsync/service-kit';
import { clientAs } from '@calsync/service-kit/testing';
import { fakeCalendlyAccount } from '../../test/calendly-fixtures';
import {
  allMeetings,
  createTestWorld,
  readDeadLetters,
  startMeetings,
  waitFor,
  type RunningMeetings,
  type TestWorld,
} from '../../test/harness';

let world: TestWorld;
let meetings: RunningMeetings;
let admin: PromiseClient<typeof meetingsAdminV1.MeetingsAdminServiceService>;
const cursed = `cursed-${randomUUID()}`;

beforeAll(async () => {
  world = await createTestWorld('meetings-replay');
  await world.declareEventsStream();
  meetings = await startMeetings(world, { CONSUMER_MAX_DELIVER: '2', CONSUMER_BACKOFF_MS: '200' });
  admin = await clientAs(
    grpcIdentities.operator,
    meetingsAdminV1.MeetingsAdminServiceService,
    `127.0.0.1:${meetings.app.ports.grpc}`,
  );
}, 60_000);

afterAll(async () => {
  admin?.close();
  await meetings?.stop();
  await world?.close();
});

const inboxOf = async (userId: string) =>
  (await world.sql.query('SELECT delivery_key FROM inbox WHERE user_id = $1', [userId])).rows.length;

it('lists a dead letter with whose it was and why, replays it through the normal path once, and a second replay changes nothing', async () => {
  // Postgres refuses this user's invitees (a bug, say) until the trigger goes (the fix).
  await world.sql.query(`
    CREATE FUNCTION refuse_cursed() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
      IF NEW.user_id = '${cursed}' THEN RAISE EXCEPTION 'invitee refused for this test'; END IF;
      RETURN NEW;
    END $$;
    CREATE TRIGGER refuse_cursed BEFORE INSERT ON invitees FOR EACH ROW EXECUTE FUNCTION refuse_cursed();`);
  const cal = fakeCalendlyAccount();
  const booking = cal.book({ start: '2026-06-04T10:00:00Z' });
  await world.publish(cursed, cal.user.uri, booking.delivery);
  await waitFor(async () => (await readDeadLetters(world)).length === 1 || undefined, { what: 'the dead letter' });
  await world.sql.query('DROP TRIGGER refuse_cursed ON invitees; DROP FUNCTION refuse_cursed();');

  const listed = await admin.listDeadLetters({ pageSize: 0, cursor: '', userId: cursed });
  expect(listed.nextCursor).toBe('');
  expect(listed.deadLetters).toEqual([
    expect.objectContaining({
      userId: cursed,
      eventType: 'invitee.created',
      deliveries: 2,
      reason: expect.stringMatching(/invitee refused for this test/),
      originalSubject: world.names.eventSubject('invitee.created'),
    }),
  ]);
  expect(JSON.stringify(listed)).not.toContain(booking.delivery.body.toString().slice(0, 40));
  const [letter] = listed.deadLetters;
  expect(await allMeetings(meetings.client, cursed)).toEqual([]);

  expect(await admin.replayDeadLetters({ sequences: [letter!.sequence], userId: '', all: false })).toEqual({
    replayed: 1,
    notFound: 0,
  });
  await waitFor(async () => (await allMeetings(meetings.client, cursed)).length === 1 || undefined, {
    what: 'the replayed meeting',
  });
  expect(await readDeadLetters(world)).toEqual([]);

  const again = await admin.replayDeadLetters({ sequences: [letter!.sequence], userId: '', all: false });
  expect(again).toEqual({ replayed: 0, notFound: 1 });
  expect(await admin.replayDeadLetters({ sequences: [], userId: cursed, all: false })).toEqual({
    replayed: 0,
    notFound: 0,
  });
  expect(await allMeetings(meetings.client, cursed)).toHaveLength(1);
  expect(await inboxOf(cursed)).toBe(1);
});

it.each([
  ['a page size over 200', () => admin.listDeadLetters({ pageSize: 201, cursor: '', userId: '' }), /page_size/],
  ['a cursor it never returned', () => admin.listDeadLetters({ pageSize: 0, cursor: 'x', userId: '' }), /cursor/],
  [
    'a replay that names nothing',
    () => admin.replayDeadLetters({ sequences: [], userId: '', all: false }),
    /sequences or a user_id/,
  ],
  [
    'a replay that names sequences and a user',
    () => admin.replayDeadLetters({ sequences: [1], userId: 'u', all: false }),
    /either/,
  ],
])('refuses %s with INVALID_ARGUMENT, replaying nothing', async (_label, call, message) => {
  await expect(call()).rejects.toMatchObject({
    code: GrpcStatus.INVALID_ARGUMENT,
    details: expect.stringMatching(message),
  });
});
