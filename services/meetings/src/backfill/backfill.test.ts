import { randomUUID } from 'node:crypto';
import { eventsV1, meetingsV1 } from '@calsync/proto';
import {
  deliveryOf,
  startCalendlyWorld,
  type CalendlyWorld,
  type SimBooking,
  type SimUser,
} from '../../test/calendly-world';
import {
  allMeetings,
  createTestWorld,
  importCompleted,
  waitFor,
  readDeadLetters,
  startMeetings,
  type RunningMeetings,
  type TestWorld,
} from '../../test/harness';

const { MeetingStatus, InviteeStatus } = meetingsV1;

let world: TestWorld;
let calendly: CalendlyWorld;
let meetings: RunningMeetings;

beforeAll(async () => {
  world = await createTestWorld('meetings-backfill');
  calendly = await startCalendlyWorld(world);
  meetings = await startMeetings(world, calendly.env);
});

afterAll(async () => {
  await meetings?.stop();
  await calendly?.stop();
  await world?.close();
});

const control = <T>(path: string, body: unknown) => calendly.control<T>(path, body);
const connectedUser = (userId: string) => calendly.connectedUser(userId);
const book = (user: SimUser, name: string, start: string, extra: Record<string, unknown> = {}) =>
  calendly.book(user, name, start, extra);
const createdDelivery = (user: SimUser, booking: SimBooking) => deliveryOf(user, booking);
const requestBackfill = (userId: string, user: SimUser | undefined, from: string, to: string) =>
  calendly.requestBackfill(userId, user, { from, to });

const backfillsCompleted = () => meetings.counter('meetings_backfills_total', 'outcome="completed"');

describe('backfill', () => {
  it('fills the gap left while a hook was down, through the same path as deliveries', async () => {
    const userId = `user-${randomUUID()}`;
    const user = await connectedUser(userId);
    // Delivered before the hook went down.
    const early = await book(user, 'Early Bird', '2026-07-01T09:00:00Z');
    await world.publish(userId, user.uri, createdDelivery(user, early));
    await waitFor(async () => (await allMeetings(meetings.client, userId)).length === 1 || undefined);

    // While it was down: the early meeting is canceled, two more are booked, one of them rescheduled,
    // and a group event fills up. None of it reaches us.
    await control('/invitees/cancel', {
      invitee: early.invitee.uri,
      reason: 'Double booked',
      canceler_type: 'invitee',
    });
    const kept = await book(user, 'Kept Appointment', '2026-07-02T09:00:00Z');
    const moved = await book(user, 'Moving Target', '2026-07-03T09:00:00Z');
    const rescheduled = await control<SimBooking>('/invitees/reschedule', {
      invitee: moved.invitee.uri,
      start_time: '2026-07-04T09:00:00Z',
      end_time: '2026-07-04T09:30:00Z',
    });
    const group = await book(user, 'Group One', '2026-07-05T09:00:00Z', { invitees_limit: 5 });
    await book(user, 'Group Two', '2026-07-05T09:00:00Z', { scheduled_event: group.scheduled_event.uri });
    // Outside the window asked for.
    await book(user, 'Far Future', '2026-09-01T09:00:00Z');

    const before = await backfillsCompleted();
    await requestBackfill(userId, user, '2026-06-30T00:00:00Z', '2026-07-31T00:00:00Z');
    await waitFor(async () => (await backfillsCompleted()) > before || undefined, {
      what: 'the backfill',
      timeoutMs: 15_000,
    });
    const list = await allMeetings(meetings.client, userId);
    expect(list).toHaveLength(5);
    const byUri = new Map(list.map((meeting) => [meeting.scheduledEventUri, meeting]));
    const earlyMeeting = byUri.get(early.scheduled_event.uri)!;
    expect(earlyMeeting.status).toBe(MeetingStatus.MEETING_STATUS_CANCELED);
    expect(earlyMeeting.invitees[0]).toMatchObject({
      status: InviteeStatus.INVITEE_STATUS_CANCELED,
      cancellation: { reason: 'Double booked', cancelerType: 'invitee' },
    });
    expect(byUri.get(kept.scheduled_event.uri)).toMatchObject({
      status: MeetingStatus.MEETING_STATUS_ACTIVE,
      startTime: new Date('2026-07-02T09:00:00Z'),
      invitees: [{ name: 'Kept Appointment', email: 'keptappointment@example.com' }],
    });
    expect(byUri.get(moved.scheduled_event.uri)!.invitees[0]).toMatchObject({
      rescheduled: true,
      newInviteeUri: rescheduled.invitee.uri,
    });
    expect(byUri.get(rescheduled.scheduled_event.uri)).toMatchObject({
      status: MeetingStatus.MEETING_STATUS_ACTIVE,
      invitees: [{ oldInviteeUri: moved.invitee.uri }],
    });
    expect(byUri.get(group.scheduled_event.uri)!.invitees.map((invitee) => invitee.name)).toEqual([
      'Group One',
      'Group Two',
    ]);
    const { rows } = await world.sql.query<{ delivery_key: string }>(
      'SELECT delivery_key FROM inbox WHERE user_id = $1 ORDER BY delivery_key',
      [userId],
    );
    expect(rows.filter((row) => row.delivery_key.startsWith('backfill:'))).toHaveLength(6);

    // A second backfill of the same window finds nothing new to change.
    const completed = await backfillsCompleted();
    await requestBackfill(userId, user, '2026-06-30T00:00:00Z', '2026-07-31T00:00:00Z');
    await waitFor(async () => (await backfillsCompleted()) > completed || undefined, {
      what: 'the second backfill',
    });
    expect(await allMeetings(meetings.client, userId)).toEqual(list);
  });

  it('dead-letters a backfill for a user without a Calendly connection, with the reason', async () => {
    const request = await requestBackfill(
      `user-${randomUUID()}`,
      undefined,
      '2026-07-01T00:00:00Z',
      '2026-07-02T00:00:00Z',
    );
    const letter = await waitFor(
      async () =>
        (await readDeadLetters(world)).find(
          (candidate) => eventsV1.BackfillRequested.decode(candidate.originalData).requestId === request.requestId,
        ),
      { what: 'the dead letter' },
    );
    expect(letter.reason).toBe('the user has no Calendly connection');
    expect(letter.originalSubject).toBe(world.names.backfillSubject);
    expect(letter.deliveries).toBe(1);
  });

  describe('when Calendly fails', () => {
    afterEach(() => control('/faults', { api_errors: { status: 503, count: 0 } }));

    const importRow = async (requestId: string) =>
      (
        await world.sql.query<{ status: string; error: string | null; resumes: number; events: number }>(
          'SELECT status, error, resumes, events FROM imports WHERE request_id = $1',
          [requestId],
        )
      ).rows[0];

    it('retries a failed run, and the next delivery completes the import', async () => {
      const userId = `user-${randomUUID()}`;
      const user = await connectedUser(userId);
      await book(user, 'Retry One', '2026-08-03T09:00:00Z');
      // One run's three attempts at the first page (the client retries twice), then Calendly answers.
      await control('/faults', { api_errors: { status: 503, count: 3, path: '/scheduled_events', method: 'GET' } });
      const request = await requestBackfill(userId, user, '2026-08-01T00:00:00Z', '2026-08-31T00:00:00Z');
      await importCompleted(world, request.requestId);
      expect(await importRow(request.requestId)).toEqual({ status: 'completed', error: null, resumes: 1, events: 1 });
      expect(await allMeetings(meetings.client, userId)).toHaveLength(1);
    });

    it('records the import as failed, with the reason, once its last delivery failed', async () => {
      const userId = `user-${randomUUID()}`;
      const user = await connectedUser(userId);
      await book(user, 'Never Imported', '2026-08-04T09:00:00Z');
      // Every attempt of all three deliveries (CONSUMER_MAX_DELIVER) fails.
      await control('/faults', { api_errors: { status: 503, count: 9, path: '/scheduled_events', method: 'GET' } });
      const request = await requestBackfill(userId, user, '2026-08-01T00:00:00Z', '2026-08-31T00:00:00Z');
      const failed = await waitFor(
        async () => {
          const row = await importRow(request.requestId);
          return row?.status === 'failed' ? row : undefined;
        },
        { what: 'the import to be recorded as failed' },
      );
      expect(failed).toMatchObject({ resumes: 2, events: 0 });
      expect(failed.error).toMatch(/503/);
      await waitFor(
        async () =>
          (await readDeadLetters(world)).some(
            (letter) => eventsV1.BackfillRequested.decode(letter.originalData).requestId === request.requestId,
          ) || undefined,
        { what: 'the dead letter' },
      );
    });
  });

  it('never writes the access token to its logs', () => {
    expect(meetings.lines.join('\n')).not.toMatch(/Bearer|personal_access_token|access_token"/);
  });
});
