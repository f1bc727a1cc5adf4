// The whole mission, end to end: many users, each with a private Calendly account at the
// simulator, each connected (OAuth or personal token), each getting exactly their own meetings
// in the right final state through every service running as a real process.
import { approveAuthorize, simControl, type SimUser } from '@calsync/calendly-sim/testing';
import { bootSystem, eventually, http, inBatches, type RunningSystem } from './system-harness';

// E2E_USERS shrinks the run while debugging; CI runs the full 200.
const userCount = Number(process.env.E2E_USERS ?? 200);
const disconnectCount = Math.floor(userCount / 4);

interface Resource {
  uri: string;
}
interface BookingResult {
  scheduled_event: Resource;
  invitee: Resource;
  old_invitee?: Resource;
}
interface MeetingView {
  id: string;
  scheduledEventUri: string;
  status: string;
  startTime: string;
  invitees: {
    uri: string;
    status: string;
    noShow: boolean;
    rescheduled: boolean;
    oldInviteeUri: string | null;
    newInviteeUri: string | null;
  }[];
}
interface Expected {
  /** scheduled event uri -> expected meeting status and invitee states */
  meetings: Map<
    string,
    { status: string; invitees: Map<string, { status: string; noShow?: boolean; rescheduled?: boolean }> }
  >;
}
interface DemoUser {
  id: string;
  token: string;
  calendly: SimUser;
  via: 'oauth' | 'token';
  expected: Expected;
}

let system: RunningSystem;
const users: DemoUser[] = [];
const hour = 3_600_000;

// Fixed once for the run: a slot computed from the clock at each call moved by an hour when the
// calls straddled the top of an hour, and a group event's second booking then asked for another
// time than the event's (the simulator rightly refused it).
const tomorrow = Math.ceil(Date.now() / hour) * hour + 24 * hour;

/** A distinct half-hour in the coming weeks (backfill looks a bounded horizon ahead, as it should). */
function slot(userIndex: number, n: number) {
  const start = new Date(tomorrow + (userIndex * 20 + n) * 15 * 60_000);
  return { start_time: start.toISOString(), end_time: new Date(start.getTime() + 30 * 60_000).toISOString() };
}

const sim = <T>(path: string, body: unknown, method = 'POST'): Promise<T> =>
  simControl<T>(system.simulator, method, path, body);

async function meetingsOf(user: DemoUser): Promise<MeetingView[]> {
  const all: MeetingView[] = [];
  let cursor: string | null = null;
  do {
    const query: string = cursor ? `&cursor=${encodeURIComponent(cursor)}` : '';
    const page = await http<{ meetings: MeetingView[]; nextCursor: string | null }>(
      `${system.gateway}/api/meetings?limit=100${query}`,
      { token: user.token },
    );
    all.push(...page.body.meetings);
    cursor = page.body.nextCursor;
  } while (cursor);
  return all;
}

/** Connects through the real OAuth redirects, as one browser: gateway -> simulator consent (auto-approved) -> gateway callback. */
async function connectWithOAuth(user: DemoUser) {
  const { body, headers } = await http<{ authorizeUrl: string }>(`${system.gateway}/api/calendly/connect`, {
    token: user.token,
  });
  // The browser keeps the connect cookie and brings it back to the callback.
  const cookie = headers
    .getSetCookie()
    .map((line) => line.split(';')[0])
    .join('; ');
  const { location } = await approveAuthorize(body.authorizeUrl, user.calendly);
  const callback = await fetch(location, { redirect: 'manual', headers: { cookie } });
  expect(callback.status).toBe(302);
  expect(callback.headers.get('location')).toContain('calendly=connected');
}

function expectMeeting(user: DemoUser, booking: BookingResult, status: string) {
  const meeting = user.expected.meetings.get(booking.scheduled_event.uri) ?? { status, invitees: new Map() };
  meeting.status = status;
  user.expected.meetings.set(booking.scheduled_event.uri, meeting);
  return meeting;
}

/** Asserts that the user sees exactly the expected meetings, each in its expected state. */
async function assertExactlyOwnMeetings(user: DemoUser) {
  const meetings = await meetingsOf(user);
  expect(meetings.map((m) => m.scheduledEventUri).sort()).toEqual([...user.expected.meetings.keys()].sort());
  for (const meeting of meetings) {
    const expected = user.expected.meetings.get(meeting.scheduledEventUri)!;
    expect({ event: meeting.scheduledEventUri, status: meeting.status }).toEqual({
      event: meeting.scheduledEventUri,
      status: expected.status,
    });
    expect(meeting.invitees.map((i) => i.uri).sort()).toEqual([...expected.invitees.keys()].sort());
    for (const invitee of meeting.invitees) {
      const want = expected.invitees.get(invitee.uri)!;
      expect({ invitee: invitee.uri, status: invitee.status, noShow: invitee.noShow }).toEqual({
        invitee: invitee.uri,
        status: want.status,
        noShow: want.noShow ?? false,
      });
      if (want.rescheduled) expect(invitee.rescheduled).toBe(true);
    }
  }
}

beforeAll(async () => {
  system = await bootSystem({
    label: 'e2e_many',
    extraEnv: {
      subscription: { RECONCILE_INTERVAL_SECONDS: '3' },
      // Calendly retries for 24 hours; quick retries keep a delivery refused under load from
      // waiting minutes, and the window stays long enough that none disables a subscription.
      'calendly-sim': { SIM_RETRY_BASE_MS: '250', SIM_RETRY_FACTOR: '2', SIM_RETRY_WINDOW_MS: '300000' },
    },
  });
  const organizations = Array.from({ length: 20 }, (_, i) => `Advisers ${i}`);
  const created = await inBatches(
    Array.from({ length: userCount }, (_, i) => i),
    20,
    (i) =>
      sim<SimUser>('/_sim/users', {
        name: `User ${i}`,
        email: `user${i}@example.test`,
        organization: organizations[i % organizations.length],
        plan: 'standard',
      }),
  );
  created.forEach((calendly, i) =>
    users.push({
      id: `platform-user-${i}`,
      token: system.jwtFor(`platform-user-${i}`),
      calendly,
      via: i % 2 === 0 ? 'oauth' : 'token',
      expected: { meetings: new Map() },
    }),
  );
}, 120_000);

afterAll(async () => {
  await system?.stop();
});

/** On a failure, what the simulator could not deliver and what the services complained about. */
async function diagnostics(): Promise<string> {
  const failed = await http<{
    collection: { status: number | null; error?: string; url: string; event?: string }[];
    pending: number;
  }>(`${system.simulator}/_sim/deliveries?outcome=failed`).catch((error: unknown) => ({
    body: { collection: [], pending: -1, error: String(error) },
  }));
  const byStatus = new Map<string, number>();
  for (const attempt of failed.body.collection) {
    const key = `${attempt.status ?? attempt.error ?? 'no answer'}`;
    byStatus.set(key, (byStatus.get(key) ?? 0) + 1);
  }
  const complaints = system
    .logLines()
    .filter((line) => /"level":"(warn|error|fatal)"/.test(line))
    .slice(-40);
  return [
    `failed deliveries by status: ${JSON.stringify([...byStatus])}, still pending: ${failed.body.pending}`,
    ...complaints,
  ].join('\n');
}

/** `eventually`, with the system's diagnostics added to the final failure. */
async function settles(check: () => Promise<void>, timeoutMs: number): Promise<void> {
  try {
    await eventually(check, { timeoutMs, intervalMs: 1_000 });
  } catch (error) {
    (error as Error).message += `\n\n${await diagnostics()}`;
    throw error;
  }
}

test(`${userCount} users connect, by OAuth and by personal token, each with a webhook of their own`, async () => {
  await inBatches(users, 10, async (user) => {
    if (user.via === 'oauth') await connectWithOAuth(user);
    else
      await http(`${system.gateway}/api/calendly/token`, {
        method: 'POST',
        token: user.token,
        body: { token: user.calendly.personal_access_token },
      });
  });
  const subscriptions = await http<{ collection: { state: string; user: string; signing_key_source: string }[] }>(
    `${system.simulator}/_sim/webhook_subscriptions?state=active`,
  );
  const byUser = new Map(subscriptions.body.collection.map((s) => [s.user, s]));
  expect(subscriptions.body.collection).toHaveLength(userCount);
  for (const user of users) {
    const subscription = byUser.get(user.calendly.uri);
    expect(subscription).toBeDefined();
    // OAuth subscriptions are signed with the application key, personal-token ones with their own.
    expect(subscription!.signing_key_source).toBe(user.via === 'oauth' ? 'application' : 'supplied');
  }
  const connection = await http<{ connected: boolean; webhook: { state: string } }>(
    `${system.gateway}/api/calendly/connection`,
    { token: users[0]!.token },
  );
  expect(connection.body.connected).toBe(true);
}, 300_000);

test('each user gets bookings, cancellations, reschedules, no-shows and a group event, and sees exactly their own', async () => {
  await inBatches(users, 10, async (user, index) => {
    const host = user.calendly.uri;
    const invitee = (n: number) => ({ name: `Invitee ${index}-${n}`, email: `invitee${index}-${n}@example.test` });

    const kept = await sim<BookingResult>('/_sim/bookings', { user: host, invitee: invitee(1), ...slot(index, 1) });
    expectMeeting(user, kept, 'active').invitees.set(kept.invitee.uri, { status: 'active' });

    const canceled = await sim<BookingResult>('/_sim/bookings', { user: host, invitee: invitee(2), ...slot(index, 2) });
    await sim('/_sim/invitees/cancel', { invitee: canceled.invitee.uri, reason: 'conflict', canceler_type: 'invitee' });
    expectMeeting(user, canceled, 'canceled').invitees.set(canceled.invitee.uri, { status: 'canceled' });

    const moved = await sim<BookingResult>('/_sim/bookings', { user: host, invitee: invitee(3), ...slot(index, 3) });
    const rescheduled = await sim<BookingResult>('/_sim/invitees/reschedule', {
      invitee: moved.invitee.uri,
      ...slot(index, 4),
    });
    expectMeeting(user, moved, 'canceled').invitees.set(moved.invitee.uri, { status: 'canceled', rescheduled: true });
    expectMeeting(user, rescheduled, 'active').invitees.set(rescheduled.invitee.uri, { status: 'active' });

    const absent = await sim<BookingResult>('/_sim/bookings', { user: host, invitee: invitee(5), ...slot(index, 5) });
    await sim('/_sim/invitees/no_show', { invitee: absent.invitee.uri });
    expectMeeting(user, absent, 'active').invitees.set(absent.invitee.uri, { status: 'active', noShow: true });

    const group = await sim<BookingResult>('/_sim/bookings', {
      user: host,
      invitee: invitee(6),
      event_name: 'Group webinar',
      invitees_limit: 5,
      ...slot(index, 6),
    });
    const second = await sim<BookingResult>('/_sim/bookings', {
      user: host,
      invitee: invitee(7),
      scheduled_event: group.scheduled_event.uri,
      ...slot(index, 6),
    });
    await sim('/_sim/invitees/cancel', {
      invitee: second.invitee.uri,
      reason: 'cannot attend',
      canceler_type: 'invitee',
    });
    const groupMeeting = expectMeeting(user, group, 'active');
    groupMeeting.invitees.set(group.invitee.uri, { status: 'active' });
    groupMeeting.invitees.set(second.invitee.uri, { status: 'canceled' });
  });

  await settles(async () => {
    for (const user of users) await assertExactlyOwnMeetings(user);
  }, 120_000);
}, 400_000);

test("a user cannot read another user's meeting by id", async () => {
  const [alice, bob] = [users[0]!, users[1]!];
  const [meeting] = await meetingsOf(alice);
  await http(`${system.gateway}/api/meetings/${meeting!.id}`, { token: alice.token });
  await http(`${system.gateway}/api/meetings/${meeting!.id}`, { token: bob.token, expect: [404] });
});

test(`${disconnectCount} users disconnect: their subscriptions are gone at the simulator, everyone else still receives`, async () => {
  const leaving = users.slice(0, disconnectCount);
  const staying = users.slice(disconnectCount);
  await inBatches(leaving, 10, (user) =>
    http(`${system.gateway}/api/calendly/connection`, { method: 'DELETE', token: user.token, expect: [204] }),
  );
  const remaining = await http<{ collection: { user: string; state: string }[] }>(
    `${system.simulator}/_sim/webhook_subscriptions`,
  );
  const subscribed = new Set(remaining.body.collection.map((s) => s.user));
  for (const user of leaving) expect(subscribed.has(user.calendly.uri)).toBe(false);
  for (const user of staying) expect(subscribed.has(user.calendly.uri)).toBe(true);
  for (const user of leaving) {
    const connection = await http<{ connected: boolean }>(`${system.gateway}/api/calendly/connection`, {
      token: user.token,
    });
    expect(connection.body.connected).toBe(false);
  }

  await inBatches(staying, 10, async (user) => {
    const index = users.indexOf(user);
    const booking = await sim<BookingResult>('/_sim/bookings', {
      user: user.calendly.uri,
      invitee: { name: 'Late booker', email: `late${index}@example.test` },
      ...slot(index, 10),
    });
    expectMeeting(user, booking, 'active').invitees.set(booking.invitee.uri, { status: 'active' });
  });
  await settles(async () => {
    for (const user of staying) await assertExactlyOwnMeetings(user);
  }, 60_000);
}, 300_000);

test('a subscription disabled at the simulator is recreated by reconcile, and what was booked meanwhile is backfilled', async () => {
  const user = users[users.length - 1]!;
  const index = users.length - 1;
  const before = await http<{ collection: { uuid: string; user: string; state: string }[] }>(
    `${system.simulator}/_sim/webhook_subscriptions?state=active`,
  );
  const subscription = before.body.collection.find((s) => s.user === user.calendly.uri)!;
  await sim(`/_sim/webhook_subscriptions/${subscription.uuid}/disable`, {});

  const missed = await sim<BookingResult>('/_sim/bookings', {
    user: user.calendly.uri,
    invitee: { name: 'Booked while down', email: 'down@example.test' },
    ...slot(index, 12),
  });
  expectMeeting(user, missed, 'active').invitees.set(missed.invitee.uri, { status: 'active' });

  await eventually(
    async () => {
      const after = await http<{ collection: { uuid: string; user: string; state: string }[] }>(
        `${system.simulator}/_sim/webhook_subscriptions?state=active`,
      );
      const replacement = after.body.collection.find((s) => s.user === user.calendly.uri);
      expect(replacement).toBeDefined();
      expect(replacement!.uuid).not.toBe(subscription.uuid);
    },
    { timeoutMs: 60_000, intervalMs: 500 },
  );
  await settles(() => assertExactlyOwnMeetings(user), 60_000);

  // And the replacement delivers in real time again.
  const after = await sim<BookingResult>('/_sim/bookings', {
    user: user.calendly.uri,
    invitee: { name: 'Booked after repair', email: 'repaired@example.test' },
    ...slot(index, 13),
  });
  expectMeeting(user, after, 'active').invitees.set(after.invitee.uri, { status: 'active' });
  await settles(() => assertExactlyOwnMeetings(user), 30_000);
}, 180_000);

test('no secret appears in any service log line of the run', () => {
  const secrets = users.map((user) => user.calendly.personal_access_token);
  const text = system.logLines().join('\n');
  for (const secret of secrets) expect(text).not.toContain(secret);
});
