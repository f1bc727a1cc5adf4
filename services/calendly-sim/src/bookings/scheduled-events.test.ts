import { startHarness, type SimHarness, type SimUser } from '../../test/harness';

type EventsPage = {
  collection: { uri: string; start_time: string; status: string; name: string }[];
  pagination: {
    count: number;
    next_page: string | null;
    next_page_token: string | null;
    previous_page_token: string | null;
  };
};

let harness: SimHarness;
let owner: SimUser;
let member: SimUser;
let colleague: SimUser;
const base = Date.UTC(2031, 0, 1, 9);
const at = (hour: number) => new Date(base + hour * 3_600_000).toISOString();

beforeAll(async () => {
  harness = await startHarness();
  owner = await harness.createUser({ name: 'Olga Owner', email: 'olga@example.test', organization: 'Events Inc' });
  member = await harness.createUser({ name: 'Mia Member', email: 'mia@example.test', organization: 'Events Inc' });
  colleague = await harness.createUser({
    name: 'Carl Colleague',
    email: 'carl@example.test',
    organization: 'Events Inc',
  });
  // 25 bookings for the member, booked out of order, every fifth one canceled.
  for (const hour of Array.from({ length: 25 }, (_, i) => (i * 7) % 25)) {
    const booked = await harness.control<{ invitee: { uri: string } }>('POST', '/_sim/bookings', {
      user: member.uri,
      invitee: { name: `Guest ${hour}`, email: `guest${hour}@invitee.test` },
      start_time: at(hour),
      end_time: at(hour + 0.5),
    });
    if (hour % 5 === 0)
      await harness.control('POST', '/_sim/invitees/cancel', { invitee: booked.invitee.uri, canceler_type: 'host' });
  }
  await harness.control('POST', '/_sim/bookings', {
    user: colleague.uri,
    invitee: { name: 'Other Guest', email: 'other@invitee.test' },
    start_time: at(3),
    end_time: at(4),
  });
});
afterAll(() => harness.stop());

const list = (query: Record<string, string>, token = member.personal_access_token) =>
  harness.call<EventsPage>('GET', `/scheduled_events?${new URLSearchParams(query).toString()}`, { token });

test('lists a user’s events sorted by start time and paged with page_token', async () => {
  const first = await list({ user: member.uri, count: '10' });
  expect(first.status).toBe(200);
  expect(first.body.collection.map((e) => e.start_time)).toEqual(
    Array.from({ length: 10 }, (_, i) => at(i).replace(/\.000Z$/, '.000000Z')),
  );
  const pages = [first.body];
  while (pages[pages.length - 1]!.pagination.next_page) {
    pages.push(
      (
        await harness.call<EventsPage>('GET', pages[pages.length - 1]!.pagination.next_page!, {
          token: member.personal_access_token,
        })
      ).body,
    );
  }
  expect(pages.map((p) => p.pagination.count)).toEqual([10, 10, 5]);
  expect(new Set(pages.flatMap((p) => p.collection.map((e) => e.uri))).size).toBe(25);
  const descending = await list({ user: member.uri, sort: 'start_time:desc', count: '1' });
  expect(descending.body.collection[0]!.start_time).toBe(at(24).replace(/\.000Z$/, '.000000Z'));
});

test('filters by status and by a start-time window (min inclusive, max exclusive) and by invitee email', async () => {
  const canceled = await list({ user: member.uri, status: 'canceled', count: '100' });
  expect(canceled.body.collection).toHaveLength(5);
  expect(canceled.body.collection.every((e) => e.status === 'canceled')).toBe(true);
  const window = await list({ user: member.uri, min_start_time: at(10), max_start_time: at(15), count: '100' });
  expect(window.body.collection.map((e) => Date.parse(e.start_time))).toEqual(
    [10, 11, 12, 13, 14].map((h) => Date.parse(at(h))),
  );
  const active = await list({ user: member.uri, status: 'active', min_start_time: at(10), max_start_time: at(15) });
  expect(active.body.collection).toHaveLength(4);
  const byEmail = await list({ user: member.uri, invitee_email: 'guest7@invitee.test' });
  expect(byEmail.body.collection.map((e) => e.start_time)).toEqual([at(7).replace(/\.000Z$/, '.000000Z')]);
});

test('refuses bad filters with 400 naming them, and a list without user or organization', async () => {
  const bad = await list({ user: member.uri, status: 'maybe', min_start_time: 'yesterday', count: '500' });
  expect(bad.status).toBe(400);
  const parameters = (bad.body as unknown as { details: { parameter: string }[] }).details
    .map((d) => d.parameter)
    .sort();
  expect(parameters).toEqual(['count', 'min_start_time', 'status']);
  expect((await list({})).status).toBe(400);
});

test('a member sees only their own events; an owner sees the organization’s', async () => {
  expect((await list({ user: colleague.uri }, member.personal_access_token)).status).toBe(403);
  expect((await list({ organization: owner.organization }, member.personal_access_token)).status).toBe(403);
  const all = await list({ organization: owner.organization, count: '100' }, owner.personal_access_token);
  expect(all.body.collection).toHaveLength(26);
  const colleagues = await list({ user: colleague.uri }, owner.personal_access_token);
  expect(colleagues.body.collection).toHaveLength(1);
});

test('lists and fetches a group event’s invitees by their URIs', async () => {
  const group = await harness.control<{ scheduled_event: { uri: string }; invitee: { uri: string } }>(
    'POST',
    '/_sim/bookings',
    {
      user: member.uri,
      invitee: { name: 'Ada', email: 'ada@invitee.test' },
      start_time: at(40),
      end_time: at(41),
      event_name: 'Workshop',
      invitees_limit: 10,
    },
  );
  for (const name of ['Ben', 'Cy', 'Di']) {
    await harness.control('POST', '/_sim/bookings', {
      user: member.uri,
      invitee: { name, email: `${name.toLowerCase()}@invitee.test` },
      scheduled_event: group.scheduled_event.uri,
    });
  }
  const ben = await harness.call<{
    collection: { uri: string; name: string }[];
    pagination: { next_page: string | null };
  }>('GET', `${group.scheduled_event.uri}/invitees?count=2`, { token: member.personal_access_token });
  expect(ben.body.collection.map((i) => i.name)).toEqual(['Ada', 'Ben']);
  const rest = await harness.call<{ collection: { name: string; uri: string }[] }>(
    'GET',
    ben.body.pagination.next_page!,
    {
      token: member.personal_access_token,
    },
  );
  expect(rest.body.collection.map((i) => i.name)).toEqual(['Cy', 'Di']);
  await harness.control('POST', '/_sim/invitees/cancel', { invitee: rest.body.collection[0]!.uri });
  const active = await harness.call<{ collection: { name: string }[] }>(
    'GET',
    `${group.scheduled_event.uri}/invitees?status=active`,
    {
      token: member.personal_access_token,
    },
  );
  expect(active.body.collection.map((i) => i.name)).toEqual(['Ada', 'Ben', 'Di']);
  const one = await harness.call<{ resource: { uri: string; event: string } }>('GET', group.invitee.uri, {
    token: member.personal_access_token,
  });
  expect(one.body.resource).toMatchObject({ uri: group.invitee.uri, event: group.scheduled_event.uri });
  const event = await harness.call<{ resource: { invitees_counter: unknown; status: string } }>(
    'GET',
    group.scheduled_event.uri,
    {
      token: member.personal_access_token,
    },
  );
  expect(event.body.resource).toMatchObject({ status: 'active', invitees_counter: { total: 4, active: 3, limit: 10 } });
  expect(
    (await harness.call('GET', group.scheduled_event.uri, { token: colleague.personal_access_token })).status,
  ).toBe(403);
  const user = await harness.call('GET', member.uri, { token: colleague.personal_access_token });
  expect(user.status).toBe(200);
  const organization = await harness.call<{ resource: { uri: string } }>('GET', member.organization, {
    token: member.personal_access_token,
  });
  expect(organization.body.resource.uri).toBe(member.organization);
});

test('control inputs are validated: unknown hosts, bad times and unknown invitees are 400 and change nothing', async () => {
  const before = await list({ user: member.uri, count: '100' });
  const unknownHost = await harness.call('POST', '/_sim/bookings', {
    body: {
      user: `${harness.sim.url}/users/00000000-0000-4000-8000-000000000000`,
      invitee: { name: 'X', email: 'x@invitee.test' },
      start_time: at(1),
      end_time: at(2),
    },
  });
  expect(unknownHost.status).toBe(400);
  const backwards = await harness.call('POST', '/_sim/bookings', {
    body: { user: member.uri, invitee: { name: 'X', email: 'x@invitee.test' }, start_time: at(2), end_time: at(1) },
  });
  expect(backwards.status).toBe(400);
  const badEmail = await harness.call('POST', '/_sim/bookings', {
    body: { user: member.uri, invitee: { name: 'X', email: 'not-an-email' }, start_time: at(1), end_time: at(2) },
  });
  expect(badEmail.status).toBe(400);
  expect(JSON.stringify(badEmail.body)).toContain('invitee.email');
  const unknownInvitee = await harness.call('POST', '/_sim/invitees/cancel', { body: { invitee: 'nobody' } });
  expect(unknownInvitee.status).toBe(400);
  const after = await list({ user: member.uri, count: '100' });
  expect(after.body.collection).toHaveLength(before.body.collection.length);
});
