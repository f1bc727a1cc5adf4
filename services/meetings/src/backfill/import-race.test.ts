import { randomUUID } from 'node:crypto';
import { eventsV1, meetingsV1 } from '@calsync/proto';
import { deliveryOf, startCalendlyWorld, type CalendlyWorld, type SimBooking } from '../../test/calendly-world';
import {
  allMeetings,
  createTestWorld,
  importCompleted,
  inboxReaches,
  startMeetings,
  waitFor,
  type RunningMeetings,
  type TestWorld,
} from '../../test/harness';

const { MeetingStatus, InviteeStatus, MeetingChangeKind } = meetingsV1;
const { BACKFILL_KIND_INITIAL_IMPORT } = eventsV1.BackfillKind;
const window = { from: '2026-12-01T00:00:00Z', to: '2027-01-01T00:00:00Z' };

let world: TestWorld;
let calendly: CalendlyWorld;
let meetings: RunningMeetings;

beforeAll(async () => {
  world = await createTestWorld('meetings-import-race');
  calendly = await startCalendlyWorld(world);
  meetings = await startMeetings(world, { ...calendly.env, IMPORT_CONCURRENCY: '2' });
});

afterAll(async () => {
  await meetings?.stop();
  await calendly?.stop();
  await world?.close();
});

async function inboxCount(userId: string): Promise<number> {
  const { rows } = await world.sql.query<{ n: number }>('SELECT count(*)::int AS n FROM inbox WHERE user_id = $1', [
    userId,
  ]);
  return rows[0]!.n;
}

/** The kinds of MeetingChanged the feed holds for the user, in order, once the outbox is empty. */
async function changeKinds(userId: string): Promise<meetingsV1.MeetingChangeKind[]> {
  await waitFor(
    async () => (await world.sql.query('SELECT 1 FROM outbox WHERE user_id = $1', [userId])).rowCount === 0,
    {
      what: 'the change feed to be published',
    },
  );
  const subject = world.names.meetingsChangedSubject(userId);
  const stream = world.names.meetingsChangedStream;
  const { state } = await world.jsm.streams.info(stream);
  const kinds: meetingsV1.MeetingChangeKind[] = [];
  for (let seq = state.first_seq; state.messages > 0 && seq <= state.last_seq; seq++) {
    const stored = await world.jsm.streams.getMessage(stream, { seq });
    if (stored.subject === subject) kinds.push(meetingsV1.MeetingChanged.decode(stored.data).kind);
  }
  return kinds;
}

async function theOnlyMeeting(userId: string): Promise<meetingsV1.Meeting> {
  const list = await allMeetings(meetings.client, userId);
  expect(list).toHaveLength(1);
  expect(list[0]!.invitees).toHaveLength(1);
  return list[0]!;
}

describe('a webhook delivery and the import of the same invitee', () => {
  it('delivery first: the import that follows changes nothing it should not, and a late cancel still lands', async () => {
    const userId = `user-${randomUUID()}`;
    const user = await calendly.connectedUser(userId);
    const booking = await calendly.book(user, 'Dee Livery', '2026-12-02T09:00:00Z');
    await world.publish(userId, user.uri, deliveryOf(user, booking));
    await inboxReaches(world, [userId], 1);
    // Canceled at Calendly; the import sees it before the cancel's webhook arrives.
    const canceled = await calendly.cancel(booking);
    const request = await calendly.requestBackfill(userId, user, window, BACKFILL_KIND_INITIAL_IMPORT);
    await importCompleted(world, request.requestId);
    await world.publish(userId, user.uri, deliveryOf(user, canceled));
    await waitFor(async () => (await inboxCount(userId)) === 3 || undefined, { what: 'the cancel delivery' });

    const meeting = await theOnlyMeeting(userId);
    expect(meeting.status).toBe(MeetingStatus.MEETING_STATUS_CANCELED);
    expect(meeting.invitees[0]).toMatchObject({
      uri: booking.invitee.uri,
      status: InviteeStatus.INVITEE_STATUS_CANCELED,
      cancellation: { reason: 'Cannot make it' },
    });
    expect(await changeKinds(userId)).toEqual([
      MeetingChangeKind.MEETING_CHANGE_KIND_CREATED,
      MeetingChangeKind.MEETING_CHANGE_KIND_CANCELED,
    ]);
  });

  it('import first: the late created webhook revives nothing, the cancel webhook cancels once', async () => {
    const userId = `user-${randomUUID()}`;
    const user = await calendly.connectedUser(userId);
    const booking = await calendly.book(user, 'Imo Port', '2026-12-03T09:00:00Z');
    const request = await calendly.requestBackfill(userId, user, window, BACKFILL_KIND_INITIAL_IMPORT);
    await importCompleted(world, request.requestId);
    const canceled = await calendly.cancel(booking);
    // The cancel's webhook overtakes the booking's (Calendly does not promise an order).
    await world.publish(userId, user.uri, deliveryOf(user, canceled));
    await world.publish(userId, user.uri, deliveryOf(user, booking));
    await waitFor(async () => (await inboxCount(userId)) === 3 || undefined, { what: 'both deliveries' });
    // And an import again (a reconnect) finds nothing new.
    const again = await calendly.requestBackfill(userId, user, window, BACKFILL_KIND_INITIAL_IMPORT);
    await importCompleted(world, again.requestId);

    const meeting = await theOnlyMeeting(userId);
    expect(meeting.status).toBe(MeetingStatus.MEETING_STATUS_CANCELED);
    expect(meeting.invitees[0]).toMatchObject({
      uri: booking.invitee.uri,
      status: InviteeStatus.INVITEE_STATUS_CANCELED,
    });
    expect(await changeKinds(userId)).toEqual([
      MeetingChangeKind.MEETING_CHANGE_KIND_CREATED,
      MeetingChangeKind.MEETING_CHANGE_KIND_CANCELED,
    ]);
  });

  it('both at once over many invitees: every meeting ends as Calendly has it, each once', async () => {
    const userId = `user-${randomUUID()}`;
    const user = await calendly.connectedUser(userId);
    const bookings: SimBooking[] = [];
    for (let index = 0; index < 40; index++)
      bookings.push(
        await calendly.book(user, `Guest ${index}`, new Date(Date.UTC(2026, 11, 5) + index * 3_600_000).toISOString()),
      );
    const finals = new Map<string, SimBooking>();
    for (const [index, booking] of bookings.entries())
      finals.set(booking.invitee.uri, index % 3 === 0 ? await calendly.cancel(booking) : booking);
    const deliveries = bookings.flatMap((booking) => {
      const last = finals.get(booking.invitee.uri)!;
      return last === booking ? [deliveryOf(user, booking)] : [deliveryOf(user, booking), deliveryOf(user, last)];
    });
    const request = await calendly.requestBackfill(userId, user, window, BACKFILL_KIND_INITIAL_IMPORT);
    await Promise.all(deliveries.map((delivery) => world.publish(userId, user.uri, delivery)));
    await importCompleted(world, request.requestId);
    await waitFor(async () => (await inboxCount(userId)) === deliveries.length + bookings.length || undefined, {
      what: 'every delivery and every imported invitee',
    });

    const list = await allMeetings(meetings.client, userId);
    expect(list).toHaveLength(bookings.length);
    for (const meeting of list) {
      expect(meeting.invitees).toHaveLength(1);
      const truth = finals.get(meeting.invitees[0]!.uri)!;
      const canceled = truth.invitee.status === 'canceled';
      expect(meeting.status).toBe(
        canceled ? MeetingStatus.MEETING_STATUS_CANCELED : MeetingStatus.MEETING_STATUS_ACTIVE,
      );
    }
    const kinds = await changeKinds(userId);
    const canceledCount = [...finals.values()].filter((booking) => booking.invitee.status === 'canceled').length;
    // Each meeting created once; each canceled one canceled at most once (the import may bring it in canceled).
    expect(kinds.filter((kind) => kind === MeetingChangeKind.MEETING_CHANGE_KIND_CREATED)).toHaveLength(
      bookings.length,
    );
    expect(kinds.filter((kind) => kind === MeetingChangeKind.MEETING_CHANGE_KIND_CANCELED).length).toBeLessThanOrEqual(
      canceledCount,
    );
    expect(kinds.length).toBeLessThanOrEqual(bookings.length + canceledCount);
  });
});
