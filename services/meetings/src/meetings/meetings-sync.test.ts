import { randomUUID } from 'node:crypto';
import { meetingsV1 } from '@calsync/proto';
import { channelCredentials, grpcIdentities, GrpcStatus } from '@calsync/service-kit';
import { callWithoutCertificate, clientAs, reflectedServices, testGrpcSecurity } from '@calsync/service-kit/testing';
import { nanos } from 'nats';
import {
  fakeCalendlyAccount,
  permutations,
  shuffled,
  type Delivery,
  type FakeCalendlyAccount,
} from '../../test/calendly-fixtures';
import {
  allMeetings,
  comparable,
  createTestWorld,
  waitFor,
  inboxReaches,
  startMeetings,
  sumSamples,
  type RunningMeetings,
  type TestWorld,
} from '../../test/harness';

const { MeetingStatus, InviteeStatus } = meetingsV1;
const ACTIVE = MeetingStatus.MEETING_STATUS_ACTIVE;
const CANCELED = MeetingStatus.MEETING_STATUS_CANCELED;

let world: TestWorld;
let meetings: RunningMeetings;

// Shorter than any test's pause, so a republished delivery reaches the consumer as Calendly's
// retries do once the window is over (they go on for 24 hours).
const gatewayDuplicateWindowMs = 1_000;

beforeAll(async () => {
  world = await createTestWorld('meetings-sync');
  // The gateway declared the events stream first, with its own settings.
  await world.declareEventsStream(gatewayDuplicateWindowMs);
  meetings = await startMeetings(world);
});

afterAll(async () => {
  await meetings?.stop();
  await world?.close();
});

describe('who may call', () => {
  it('answers meetings only to the gateway: other services are refused, a stranger unauthenticated', async () => {
    const address = `127.0.0.1:${meetings.app.ports.grpc}`;
    const request = meetingsV1.ListMeetingsRequest.fromPartial({ userId: 'who-ann' });
    for (const other of [grpcIdentities.subscription, grpcIdentities.identity]) {
      const client = await clientAs(other, meetingsV1.MeetingsServiceService, address);
      await expect(client.listMeetings(request)).rejects.toMatchObject({ code: GrpcStatus.PERMISSION_DENIED });
      client.close();
    }
    const stranger = await callWithoutCertificate(meetingsV1.MeetingsServiceService, address, 'listMeetings', request);
    expect(stranger.code).toBe(GrpcStatus.UNAUTHENTICATED);
    await expect(meetings.client.listMeetings(request)).resolves.toMatchObject({ meetings: [] });
  });

  it('lists only its own services and health in reflection', async () => {
    const credentials = channelCredentials(await testGrpcSecurity(), grpcIdentities.meetings);
    expect(await reflectedServices(`127.0.0.1:${meetings.app.ports.grpc}`, credentials)).toEqual([
      'calsync.meetings.v1.MeetingsAdminService',
      'calsync.meetings.v1.MeetingsService',
      'grpc.health.v1.Health',
    ]);
  });
});

const newUser = () => `user-${randomUUID()}`;

async function publishAll(userId: string, cal: FakeCalendlyAccount, deliveries: Delivery[]): Promise<void> {
  for (const delivery of deliveries) await world.publish(userId, cal.user.uri, delivery);
}

async function deliverInOrder(userId: string, cal: FakeCalendlyAccount, deliveries: Delivery[]): Promise<void> {
  const { rows } = await world.sql.query<{ n: number }>('SELECT count(*)::int AS n FROM inbox WHERE user_id = $1', [
    userId,
  ]);
  let applied = rows[0]!.n;
  for (const delivery of deliveries) {
    await world.publish(userId, cal.user.uri, delivery);
    await inboxReaches(world, [userId], ++applied);
  }
}

function byEventUri(list: meetingsV1.Meeting[]): Map<string, meetingsV1.Meeting> {
  return new Map(list.map((meeting) => [meeting.scheduledEventUri, meeting]));
}

describe('meetings from Calendly deliveries', () => {
  it('turns a booking into the user’s meeting with its invitee, location and answers', async () => {
    const cal = fakeCalendlyAccount();
    const userId = newUser();
    const booking = cal.book({
      start: '2026-06-01T10:00:00Z',
      minutes: 45,
      eventName: 'Discovery call',
      name: 'Ada Lovelace',
      email: 'ada@example.com',
      location: { type: 'zoom', join_url: 'https://zoom.us/j/1234', status: 'pushed' },
      answers: [{ question: 'Company?', answer: 'Analytical Engines Ltd', position: 0 }],
    });
    await deliverInOrder(userId, cal, [booking.delivery]);

    const [listed, ...others] = await allMeetings(meetings.client, userId);
    expect(others).toHaveLength(0);
    expect(listed).toMatchObject({
      userId,
      scheduledEventUri: booking.event.uri,
      name: 'Discovery call',
      eventTypeUri: booking.event.eventTypeUri,
      status: ACTIVE,
      startTime: new Date('2026-06-01T10:00:00Z'),
      endTime: new Date('2026-06-01T10:45:00Z'),
      location: { type: 'zoom', location: '', joinUrl: 'https://zoom.us/j/1234' },
      invitees: [
        {
          uri: booking.invitee.uri,
          name: 'Ada Lovelace',
          email: 'ada@example.com',
          status: InviteeStatus.INVITEE_STATUS_ACTIVE,
          timezone: 'Europe/Berlin',
          answers: [{ question: 'Company?', answer: 'Analytical Engines Ltd', position: 0 }],
          rescheduled: false,
          noShow: false,
        },
      ],
    });
    expect(listed!.cancellation).toBeUndefined();
    const { meeting } = await meetings.client.getMeeting({ userId, id: listed!.id });
    expect(meeting).toEqual(listed);
  });

  it('ends canceled, with who canceled and why, when the cancel arrives before its create', async () => {
    const cal = fakeCalendlyAccount();
    const userId = newUser();
    const booking = cal.book({ start: '2026-06-02T10:00:00Z', name: 'Carl Cancel' });
    const cancel = cal.cancel(booking.invitee, { cancelerType: 'invitee', reason: 'Found another slot' });
    await deliverInOrder(userId, cal, [cancel, booking.delivery]);

    const [meeting] = await allMeetings(meetings.client, userId);
    expect(meeting!.status).toBe(CANCELED);
    expect(meeting!.cancellation).toMatchObject({
      canceledBy: 'Carl Cancel',
      reason: 'Found another slot',
      cancelerType: 'invitee',
    });
    expect(meeting!.invitees).toHaveLength(1);
    expect(meeting!.invitees[0]).toMatchObject({
      status: InviteeStatus.INVITEE_STATUS_CANCELED,
      cancellation: { reason: 'Found another slot', cancelerType: 'invitee' },
    });
  });

  it('links the old and the new invitee of a reschedule whichever half arrives first', async () => {
    const cal = fakeCalendlyAccount();
    const booking = cal.book({ start: '2026-06-03T10:00:00Z', name: 'Rita Reschedule' });
    const moved = cal.reschedule(booking.invitee, '2026-06-04T15:00:00Z');
    const orders = permutations([booking.delivery, moved.canceled, moved.created]);
    const users = orders.map(() => newUser());
    for (const [index, order] of orders.entries()) await deliverInOrder(users[index]!, cal, order);

    for (const userId of users) {
      const list = byEventUri(await allMeetings(meetings.client, userId));
      expect(list.size).toBe(2);
      const old = list.get(booking.event.uri)!;
      const next = list.get(moved.event.uri)!;
      expect(old.status).toBe(CANCELED);
      expect(old.cancellation).toMatchObject({ reason: 'Rescheduled', cancelerType: 'invitee' });
      expect(old.invitees[0]).toMatchObject({
        uri: booking.invitee.uri,
        status: InviteeStatus.INVITEE_STATUS_CANCELED,
        rescheduled: true,
        newInviteeUri: moved.invitee.uri,
        oldInviteeUri: '',
      });
      expect(next.status).toBe(ACTIVE);
      expect(next.startTime).toEqual(new Date('2026-06-04T15:00:00Z'));
      expect(next.invitees[0]).toMatchObject({
        uri: moved.invitee.uri,
        status: InviteeStatus.INVITEE_STATUS_ACTIVE,
        rescheduled: false,
        oldInviteeUri: booking.invitee.uri,
        newInviteeUri: '',
      });
    }
  });

  it('keeps a group event active until its last invitee cancels', async () => {
    const cal = fakeCalendlyAccount();
    const userId = newUser();
    const first = cal.book({ start: '2026-06-05T09:00:00Z', limit: 3, eventName: 'Workshop', name: 'Gina' });
    const second = cal.join(first.event, { name: 'Gus' });
    const third = cal.join(first.event, { name: 'Gia' });
    await deliverInOrder(userId, cal, [first.delivery, second.delivery, third.delivery]);
    let [meeting] = await allMeetings(meetings.client, userId);
    expect(meeting!.invitees.map((invitee) => invitee.name)).toEqual(['Gina', 'Gus', 'Gia']);

    await deliverInOrder(userId, cal, [
      cal.cancel(second.invitee, { cancelerType: 'invitee', reason: 'Sick' }),
      cal.cancel(first.invitee, { cancelerType: 'invitee', reason: 'Busy' }),
    ]);
    [meeting] = await allMeetings(meetings.client, userId);
    expect(meeting!.status).toBe(ACTIVE);
    expect(meeting!.cancellation).toBeUndefined();
    expect(meeting!.invitees.map((invitee) => invitee.status)).toEqual([
      InviteeStatus.INVITEE_STATUS_CANCELED,
      InviteeStatus.INVITEE_STATUS_CANCELED,
      InviteeStatus.INVITEE_STATUS_ACTIVE,
    ]);

    await deliverInOrder(userId, cal, [cal.cancel(third.invitee, { cancelerType: 'invitee', reason: 'Away' })]);
    [meeting] = await allMeetings(meetings.client, userId);
    expect(meeting!.status).toBe(CANCELED);
    expect(meeting!.cancellation).toMatchObject({ canceledBy: 'Gia', reason: 'Away' });
  });

  it('keeps a group event active when one invitee’s cancel arrives before another’s booking', async () => {
    const cal = fakeCalendlyAccount();
    const userId = newUser();
    const first = cal.book({ start: '2026-06-05T13:00:00Z', limit: 2, eventName: 'Panel', name: 'Pia' });
    const second = cal.join(first.event, { name: 'Pat' });
    const cancelFirst = cal.cancel(first.invitee, { cancelerType: 'invitee', reason: 'Clash' });
    await deliverInOrder(userId, cal, [first.delivery, cancelFirst]);
    // Calendly's counter says one seat is still taken, though we have not heard of it yet.
    expect((await allMeetings(meetings.client, userId))[0]!.status).toBe(ACTIVE);
    await deliverInOrder(userId, cal, [second.delivery]);
    const [meeting] = await allMeetings(meetings.client, userId);
    expect(meeting!.status).toBe(ACTIVE);
    expect(meeting!.invitees).toHaveLength(2);
  });

  it('marks and unmarks a no-show, and an older mark never undoes a newer unmark', async () => {
    const cal = fakeCalendlyAccount();
    const inOrder = newUser();
    const reversed = newUser();
    const booking = cal.book({ start: '2026-06-06T10:00:00Z' });
    const mark = cal.markNoShow(booking.invitee);
    const markedAt = booking.invitee.noShow!.created_at;
    await deliverInOrder(inOrder, cal, [booking.delivery, mark]);
    const marked = (await allMeetings(meetings.client, inOrder))[0]!.invitees[0]!;
    expect(marked.noShow).toBe(true);
    expect(marked.noShowAt).toEqual(new Date(markedAt));

    const unmark = cal.unmarkNoShow(booking.invitee);
    await deliverInOrder(inOrder, cal, [unmark]);
    await deliverInOrder(reversed, cal, [unmark, booking.delivery, mark]);
    for (const userId of [inOrder, reversed]) {
      const invitee = (await allMeetings(meetings.client, userId))[0]!.invitees[0]!;
      expect(invitee.noShow).toBe(false);
      expect(invitee.noShowAt).toBeUndefined();
    }
  });

  it('ends a shuffled history exactly where the same history in order ends', async () => {
    const cal = fakeCalendlyAccount();
    const day = (n: number) => `2026-07-${String(n).padStart(2, '0')}T10:00:00Z`;
    const deliveries: Delivery[] = [];
    const active = cal.book({ start: day(1), name: 'Ann Active' });
    deliveries.push(active.delivery);
    const inviteeCancel = cal.book({ start: day(2), name: 'Ben Busy' });
    deliveries.push(
      inviteeCancel.delivery,
      cal.cancel(inviteeCancel.invitee, { cancelerType: 'invitee', reason: 'Conflict' }),
    );
    const hostCancel = cal.book({ start: day(3), name: 'Cat Host' });
    deliveries.push(hostCancel.delivery, cal.cancel(hostCancel.invitee, { cancelerType: 'host', reason: 'Out sick' }));
    const moving = cal.book({ start: day(4), name: 'Rae Mover' });
    const movedOnce = cal.reschedule(moving.invitee, day(5));
    const movedTwice = cal.reschedule(movedOnce.invitee, day(6));
    deliveries.push(moving.delivery, movedOnce.canceled, movedOnce.created, movedTwice.canceled, movedTwice.created);
    const noShow = cal.book({ start: day(7), name: 'Ned Absent' });
    deliveries.push(noShow.delivery, cal.markNoShow(noShow.invitee));
    const cleared = cal.book({ start: day(8), name: 'Mo Cleared' });
    deliveries.push(cleared.delivery, cal.markNoShow(cleared.invitee), cal.unmarkNoShow(cleared.invitee));
    const group = cal.book({ start: day(9), limit: 3, eventName: 'Workshop', name: 'Gil' });
    const groupSecond = cal.join(group.event, { name: 'Gwen' });
    const groupThird = cal.join(group.event, { name: 'Gus' });
    deliveries.push(
      group.delivery,
      groupSecond.delivery,
      groupThird.delivery,
      cal.cancel(groupSecond.invitee, { cancelerType: 'invitee', reason: 'Sick' }),
      cal.cancel(group.invitee, { cancelerType: 'invitee', reason: 'Busy' }),
    );
    const emptied = cal.book({ start: day(10), limit: 2, eventName: 'Pairing', name: 'Eve' });
    const emptiedSecond = cal.join(emptied.event, { name: 'Eli' });
    deliveries.push(
      emptied.delivery,
      emptiedSecond.delivery,
      cal.cancel(emptied.invitee, { cancelerType: 'invitee', reason: 'No time' }),
      cal.cancel(emptiedSecond.invitee, { cancelerType: 'invitee', reason: 'Holiday' }),
    );

    const ordered = newUser();
    const seeds = [1, 7, 42];
    const shuffledUsers = seeds.map(() => newUser());
    await publishAll(ordered, cal, deliveries);
    for (const [index, seed] of seeds.entries())
      await publishAll(shuffledUsers[index]!, cal, shuffled(deliveries, seed));
    // 96 transactions, each also writing its change-feed event: on a loaded 2-core machine that
    // takes longer than the default wait, and nothing here is about speed.
    await inboxReaches(world, [ordered, ...shuffledUsers], deliveries.length * (seeds.length + 1), 60_000);

    const expected = byEventUri(await allMeetings(meetings.client, ordered));
    expect(expected.size).toBe(10);
    const statusOf = (uri: string) => expected.get(uri)!.status;
    expect(statusOf(active.event.uri)).toBe(ACTIVE);
    expect(statusOf(inviteeCancel.event.uri)).toBe(CANCELED);
    expect(expected.get(hostCancel.event.uri)!.cancellation).toMatchObject({
      cancelerType: 'host',
      reason: 'Out sick',
    });
    expect(statusOf(moving.event.uri)).toBe(CANCELED);
    expect(statusOf(movedOnce.event.uri)).toBe(CANCELED);
    expect(statusOf(movedTwice.event.uri)).toBe(ACTIVE);
    expect(expected.get(movedOnce.event.uri)!.invitees[0]).toMatchObject({
      oldInviteeUri: moving.invitee.uri,
      newInviteeUri: movedTwice.invitee.uri,
      rescheduled: true,
    });
    expect(expected.get(noShow.event.uri)!.invitees[0]!.noShow).toBe(true);
    expect(expected.get(cleared.event.uri)!.invitees[0]!.noShow).toBe(false);
    expect(statusOf(group.event.uri)).toBe(ACTIVE);
    expect(statusOf(emptied.event.uri)).toBe(CANCELED);
    expect(expected.get(emptied.event.uri)!.cancellation).toMatchObject({ reason: 'Holiday' });

    for (const userId of shuffledUsers) {
      const actual = byEventUri(await allMeetings(meetings.client, userId));
      expect(new Set(actual.keys())).toEqual(new Set(expected.keys()));
      for (const [uri, meeting] of expected) expect(comparable(actual.get(uri)!)).toEqual(comparable(meeting));
    }
  });

  it('changes nothing when a delivery arrives again after the duplicate window', async () => {
    const cal = fakeCalendlyAccount();
    const userId = newUser();
    const booking = cal.book({ start: '2026-06-08T10:00:00Z' });
    const cancel = cal.cancel(booking.invitee, { cancelerType: 'host', reason: 'Moved office' });
    await deliverInOrder(userId, cal, [booking.delivery, cancel]);
    const before = await allMeetings(meetings.client, userId);
    const duplicatesBefore = await meetings.counter('meetings_events_duplicates_total');

    // JetStream stores them again, as it does once its window has passed: only the inbox is left to notice.
    for (const delivery of [booking.delivery, cancel])
      await world.publish(userId, cal.user.uri, delivery, { afterDuplicateWindow: true });
    await waitFor(
      async () => (await meetings.counter('meetings_events_duplicates_total')) >= duplicatesBefore + 2 || undefined,
      { what: 'two duplicates counted' },
    );
    expect(await allMeetings(meetings.client, userId)).toEqual(before);
    const { rows } = await world.sql.query('SELECT delivery_key FROM inbox WHERE user_id = $1', [userId]);
    expect(rows).toHaveLength(2);
  });

  it('gives two users of the same scheduled event their own meeting, and never shows one to the other', async () => {
    const cal = fakeCalendlyAccount();
    const host = newUser();
    const coHost = newUser();
    const booking = cal.book({ start: '2026-06-09T10:00:00Z' });
    const cancel = cal.cancel(booking.invitee, { cancelerType: 'invitee', reason: 'Sorry' });
    await deliverInOrder(host, cal, [booking.delivery]);
    await deliverInOrder(coHost, cal, [booking.delivery, cancel]);

    const [hostMeeting] = await allMeetings(meetings.client, host);
    const [coHostMeeting] = await allMeetings(meetings.client, coHost);
    expect(hostMeeting!.scheduledEventUri).toBe(coHostMeeting!.scheduledEventUri);
    expect(hostMeeting!.id).not.toBe(coHostMeeting!.id);
    // The co-host's cancel is theirs alone.
    expect(hostMeeting!.status).toBe(ACTIVE);
    expect(coHostMeeting!.status).toBe(CANCELED);

    await expect(meetings.client.getMeeting({ userId: host, id: coHostMeeting!.id })).rejects.toMatchObject({
      code: GrpcStatus.NOT_FOUND,
    });
    await expect(meetings.client.getMeeting({ userId: host, id: randomUUID() })).rejects.toMatchObject({
      code: GrpcStatus.NOT_FOUND,
    });
  });

  it('acknowledges and ignores event types that do not concern meetings', async () => {
    const cal = fakeCalendlyAccount();
    const userId = newUser();
    await deliverInOrder(userId, cal, [cal.eventTypeCreated()]);
    const { rows } = await world.sql.query('SELECT event_type, outcome FROM inbox WHERE user_id = $1', [userId]);
    expect(rows).toEqual([{ event_type: 'event_type.created', outcome: 'ignored' }]);
    expect(await allMeetings(meetings.client, userId)).toEqual([]);
  });
});

describe('ListMeetings and GetMeeting', () => {
  const cal = fakeCalendlyAccount();
  const userId = newUser();
  const starts = [
    '2026-08-01T09:00:00Z',
    '2026-08-03T09:00:00Z',
    '2026-08-03T09:00:00Z',
    '2026-08-03T09:00:00Z',
    '2026-08-05T09:00:00Z',
    '2026-08-07T09:00:00Z',
    '2026-08-09T09:00:00Z',
  ];

  beforeAll(async () => {
    const deliveries: Delivery[] = [];
    for (const [index, start] of starts.entries()) {
      const booking = cal.book({ start });
      deliveries.push(booking.delivery);
      if (index % 3 === 0) deliveries.push(cal.cancel(booking.invitee, { cancelerType: 'host', reason: 'No' }));
    }
    await publishAll(userId, cal, deliveries);
    await inboxReaches(world, [userId], deliveries.length);
  });

  it('pages newest start first with an opaque cursor, equal starts included exactly once', async () => {
    const seen: meetingsV1.Meeting[] = [];
    let cursor = '';
    let pages = 0;
    do {
      const page = await meetings.client.listMeetings({ userId, pageSize: 2, cursor, status: 0 });
      expect(page.meetings.length).toBeLessThanOrEqual(2);
      seen.push(...page.meetings);
      cursor = page.nextCursor;
      pages++;
    } while (cursor);
    expect(pages).toBe(4);
    expect(new Set(seen.map((meeting) => meeting.id)).size).toBe(starts.length);
    const times = seen.map((meeting) => meeting.startTime!.getTime());
    expect(times).toEqual([...times].sort((a, b) => b - a));
    expect((await meetings.client.listMeetings({ userId, pageSize: 0, cursor: '', status: 0 })).meetings).toHaveLength(
      starts.length,
    );
  });

  it('filters by start window and status', async () => {
    const window = await meetings.client.listMeetings({
      userId,
      from: new Date('2026-08-03T09:00:00Z'),
      to: new Date('2026-08-07T09:00:00Z'),
      pageSize: 100,
      cursor: '',
      status: 0,
    });
    expect(window.meetings.map((meeting) => meeting.startTime!.toISOString()).sort()).toEqual([
      '2026-08-03T09:00:00.000Z',
      '2026-08-03T09:00:00.000Z',
      '2026-08-03T09:00:00.000Z',
      '2026-08-05T09:00:00.000Z',
    ]);
    const canceled = await meetings.client.listMeetings({ userId, pageSize: 100, cursor: '', status: CANCELED });
    expect(canceled.meetings).toHaveLength(3);
    expect(canceled.meetings.every((meeting) => meeting.status === CANCELED)).toBe(true);
    const active = await meetings.client.listMeetings({ userId, pageSize: 100, cursor: '', status: ACTIVE });
    expect(active.meetings).toHaveLength(4);
  });

  it('refuses bad page sizes, cursors, windows and ids with INVALID_ARGUMENT', async () => {
    const invalid = { code: GrpcStatus.INVALID_ARGUMENT };
    const list = (overrides: Partial<meetingsV1.ListMeetingsRequest>) =>
      meetings.client.listMeetings({ userId, pageSize: 10, cursor: '', status: 0, ...overrides });
    await expect(list({ pageSize: 101 })).rejects.toMatchObject(invalid);
    await expect(list({ pageSize: -1 })).rejects.toMatchObject(invalid);
    await expect(list({ cursor: 'not-a-cursor' })).rejects.toMatchObject(invalid);
    await expect(list({ userId: '' })).rejects.toMatchObject(invalid);
    await expect(list({ status: 7 as meetingsV1.MeetingStatus })).rejects.toMatchObject(invalid);
    await expect(
      list({ from: new Date('2026-08-05T00:00:00Z'), to: new Date('2026-08-01T00:00:00Z') }),
    ).rejects.toMatchObject(invalid);
    await expect(meetings.client.getMeeting({ userId, id: 'nope' })).rejects.toMatchObject(invalid);
  });

  const invalid = () => ({ code: GrpcStatus.INVALID_ARGUMENT });
  it('parses every field of a cursor and of the window before the database sees it', async () => {
    const cursorOf = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
    const id = '00000000-0000-4000-8000-000000000000';
    const list = (overrides: Partial<meetingsV1.ListMeetingsRequest>) =>
      meetings.client.listMeetings({ userId, pageSize: 10, cursor: '', status: 0, ...overrides });
    for (const [cursor, field] of [
      [cursorOf({ t: '2026-13-45T99:99:99.000000Z', id }), 't'],
      [cursorOf({ t: '2026-02-30T00:00:00.000000Z', id }), 't'],
      [cursorOf({ t: '2026-01-01T24:00:00.000000Z', id }), 't'],
      [cursorOf({ t: '0000-01-01T00:00:00.000000Z', id }), 't'],
      [cursorOf({ t: '2026-01-01T00:00:00.000000Z', id: 'zzzzzzzz-0000-4000-8000-000000000000' }), 'id'],
      [cursorOf({ t: '2026-01-01T00:00:00.000000Z' }), 'id'],
      [cursorOf({ t: '2026-01-01T00:00:00.000000Z', id, extra: 1 }), 'extra'],
      [cursorOf(['2026-01-01T00:00:00.000000Z', id]), 'cursor'],
      ['%%%', 'cursor'],
    ] as const) {
      const refusal = await list({ cursor }).then(
        () => undefined,
        (error: { code: number; details: string }) => error,
      );
      expect({ cursor, code: refusal?.code, details: refusal?.details }).toEqual({
        cursor,
        code: GrpcStatus.INVALID_ARGUMENT,
        details: expect.stringContaining(
          field === 'cursor' ? '"cursor" is not' : field === 'extra' ? 'unknown field "extra"' : `field "${field}"`,
        ),
      });
    }
    await expect(list({ from: new Date(8.64e15) })).rejects.toMatchObject(invalid());
    await expect(list({ to: new Date('0000-06-01T00:00:00Z') })).rejects.toMatchObject(invalid());
  });

  it('shows another user nothing of this user’s meetings', async () => {
    const stranger = newUser();
    expect(
      (await meetings.client.listMeetings({ userId: stranger, pageSize: 100, cursor: '', status: 0 })).meetings,
    ).toEqual([]);
  });
});

describe('operations', () => {
  it('reports applied deliveries, duplicates and consumer lag as metrics', async () => {
    const text = await meetings.metrics();
    expect(sumSamples(text, 'meetings_events_applied_total')).toBeGreaterThan(0);
    expect(text).toMatch(/meetings_consumer_pending_messages\{[^}]*consumer="events"[^}]*\} 0/);
    expect(text).toMatch(/meetings_consumer_ack_pending_messages\{[^}]*consumer="events"/);
    expect(text).toContain('meetings_dead_lettered_total');
  });

  it('declares its durable consumer and leaves the publisher’s stream settings alone', async () => {
    const stream = await world.jsm.streams.info(world.names.eventsStream);
    expect(stream.config.duplicate_window).toBe(nanos(gatewayDuplicateWindowMs));
    expect(stream.config.max_age).toBe(nanos(3_600_000));
    const consumer = await world.jsm.consumers.info(world.names.eventsStream, 'meetings');
    expect(consumer.config).toMatchObject({ ack_policy: 'explicit', max_deliver: 3 });
    const deadLetters = await world.jsm.streams.info(world.names.deadLetterStream);
    expect(deadLetters.config.subjects).toEqual([world.names.deadLetterSubjects]);
  });
});
