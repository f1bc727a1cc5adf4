import { randomBytes, randomUUID } from 'node:crypto';
import { startSimulator, type Simulator } from '@calsync/calendly-sim';
import { start as startIdentity, type IdentityApp } from '@calsync/identity';
import { loadConfig as loadIdentityConfig } from '@calsync/identity/dist/config';
import { eventsV1, identityV1, meetingsV1 } from '@calsync/proto';
import { identityCallers } from '@calsync/identity/dist/grpc/identity-handlers';
import { grpcIdentities, type PromiseClient } from '@calsync/service-kit';
import { captureLogger, clientAsAllowedCallers, testGrpcEnv, testNatsUrl } from '@calsync/service-kit/testing';
import type { Delivery } from '../../test/calendly-fixtures';
import {
  allMeetings,
  createTestWorld,
  waitFor,
  readDeadLetters,
  startMeetings,
  type RunningMeetings,
  type TestWorld,
} from '../../test/harness';

const { MeetingStatus, InviteeStatus } = meetingsV1;

interface SimUser {
  uri: string;
  uuid: string;
  organization: string;
  personal_access_token: string;
}

interface SimBooking {
  scheduled_event: { uri: string } & Record<string, unknown>;
  invitee: { uri: string; created_at: string } & Record<string, unknown>;
}

let world: TestWorld;
let sim: Simulator;
let identityApp: IdentityApp;
let identity: PromiseClient<typeof identityV1.IdentityServiceService>;
let meetings: RunningMeetings;

beforeAll(async () => {
  world = await createTestWorld('meetings-backfill');
  sim = await startSimulator({ port: 0 });
  identityApp = await startIdentity(
    loadIdentityConfig({
      ...(await testGrpcEnv(grpcIdentities.identity)),
      DATABASE_URL: world.db.url,
      NATS_URL: testNatsUrl(),
      GRPC_HOST: '127.0.0.1',
      GRPC_PORT: '0',
      METRICS_PORT: '0',
      SEALING_KEYS: `k1=${randomBytes(32).toString('base64')}`,
      SEALING_ACTIVE_KEY_ID: 'k1',
      CALENDLY_API_URL: sim.url,
      CALENDLY_AUTH_URL: sim.url,
      CALENDLY_CLIENT_ID: sim.settings.clientId,
      CALENDLY_CLIENT_SECRET: sim.settings.clientSecret,
      LOG_LEVEL: 'silent',
    }),
    { log: captureLogger('identity', 'silent').log },
  );
  const identityAddr = `127.0.0.1:${identityApp.ports.grpc}`;
  identity = await clientAsAllowedCallers(identityV1.IdentityServiceService, identityAddr, identityCallers);
  meetings = await startMeetings(world, {
    IDENTITY_ADDR: identityAddr,
    CALENDLY_API_URL: sim.url,
    CALENDLY_AUTH_URL: sim.url,
  });
});

afterAll(async () => {
  await meetings?.stop();
  identity?.close();
  await identityApp?.stop();
  await sim?.stop();
  await world?.close();
});

async function control<T>(path: string, body: unknown): Promise<T> {
  const response = await fetch(`${sim.url}/_sim${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`simulator ${path}: ${response.status} ${text}`);
  return JSON.parse(text) as T;
}

async function connectedUser(userId: string): Promise<SimUser> {
  const user = await control<SimUser>('/users', { name: `Host ${userId}`, email: `${userId}@example.com` });
  await identity.connectWithPersonalToken({ userId, token: user.personal_access_token });
  return user;
}

const book = (user: SimUser, name: string, start: string, extra: Record<string, unknown> = {}) =>
  control<SimBooking>('/bookings', {
    user: user.uri,
    invitee: { name, email: `${name.toLowerCase().replace(/\W/g, '')}@example.com` },
    start_time: start,
    end_time: new Date(Date.parse(start) + 30 * 60_000).toISOString(),
    ...extra,
  });

/** The invitee.created webhook the simulator sent for a booking, as Calendly's body. */
function createdDelivery(user: SimUser, booking: SimBooking): Delivery {
  const createdAt = booking.invitee.created_at;
  const body = {
    event: 'invitee.created',
    created_at: createdAt,
    created_by: user.uri,
    payload: { ...booking.invitee, scheduled_event: booking.scheduled_event },
  };
  return {
    eventType: 'invitee.created',
    createdAt,
    subjectUri: booking.invitee.uri,
    body: Buffer.from(JSON.stringify(body)),
  };
}

async function requestBackfill(userId: string, user: SimUser | undefined, from: string, to: string) {
  const request: eventsV1.BackfillRequested = {
    requestId: randomUUID(),
    userId,
    calendlyUserUri: user?.uri ?? '',
    windowStart: new Date(from),
    windowEnd: new Date(to),
    reason: 'webhook subscription was disabled',
    requestedAt: new Date(),
  };
  await world.js.publish(world.names.backfillSubject, eventsV1.BackfillRequested.encode(request).finish(), {
    msgID: request.requestId,
  });
  return request;
}

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

  it('never writes the access token to its logs', () => {
    expect(meetings.lines.join('\n')).not.toMatch(/Bearer|personal_access_token|access_token"/);
  });
});
