import { startHarness, type SimHarness, type SimUser } from '../../test/harness';

let harness: SimHarness;
let owner: SimUser;
let member: SimUser;

beforeAll(async () => {
  harness = await startHarness();
});
afterAll(() => harness.stop());
beforeEach(async () => {
  await harness.control('POST', '/_sim/reset');
  owner = await harness.createUser({ name: 'Olive Owner', email: 'olive@example.test', organization: 'Acme' });
  member = await harness.createUser({ name: 'Max Member', email: 'max@example.test', organization: 'Acme' });
});

const userHook = (user: SimUser, url: string, extra: Record<string, unknown> = {}) =>
  harness.call('POST', '/webhook_subscriptions', {
    token: user.personal_access_token,
    body: {
      url,
      events: ['invitee.created', 'invitee.canceled'],
      organization: user.organization,
      scope: 'user',
      user: user.uri,
      ...extra,
    },
  });

test('creates a user-scoped subscription with Calendly’s fields and never shows the signing key', async () => {
  expect(member.role).toBe('user');
  expect(owner.role).toBe('owner');
  const created = await userHook(member, 'https://hooks.test/u/1', { signing_key: 'super-secret-signing-key' });
  expect(created.status).toBe(201);
  const resource = created.body.resource as Record<string, unknown>;
  expect(resource).toEqual({
    uri: expect.stringMatching(new RegExp(`^${harness.sim.url}/webhook_subscriptions/[0-9a-f-]{36}$`)),
    callback_url: 'https://hooks.test/u/1',
    created_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/),
    updated_at: expect.any(String),
    retry_started_at: null,
    state: 'active',
    events: ['invitee.created', 'invitee.canceled'],
    scope: 'user',
    organization: member.organization,
    user: member.uri,
    group: null,
    creator: member.uri,
  });
  expect(created.text).not.toContain('super-secret-signing-key');
  const fetched = await harness.call('GET', resource.uri as string, { token: member.personal_access_token });
  expect(fetched.status).toBe(200);
  expect(fetched.body.resource).toEqual(resource);
  expect(fetched.text).not.toContain('super-secret-signing-key');
});

test.each([
  ['no organization', { organization: undefined }, 'organization'],
  ['no scope', { scope: undefined }, 'scope'],
  ['user scope without user', { user: undefined }, 'user'],
  ['no url', { url: undefined }, 'url'],
  ['a url that is not http', { url: 'ftp://hooks.test/x' }, 'url'],
  ['no events', { events: [] }, 'events'],
  ['an unknown event', { events: ['invitee.exploded'] }, 'events'],
  ['an organization-only event in user scope', { events: ['routing_form_submission.created'] }, 'events'],
  ['an empty signing key', { signing_key: '' }, 'signing_key'],
])(
  'refuses a subscription with %s (400 naming the parameter) and creates nothing',
  async (_name, change, parameter) => {
    const body: Record<string, unknown> = {
      url: 'https://hooks.test/v',
      events: ['invitee.created'],
      organization: member.organization,
      scope: 'user',
      user: member.uri,
      ...change,
    };
    for (const [key, value] of Object.entries(change)) if (value === undefined) delete body[key];
    const answer = await harness.call('POST', '/webhook_subscriptions', { token: member.personal_access_token, body });
    expect(answer.status).toBe(400);
    expect(answer.body.title).toBe('Invalid Argument');
    expect(answer.body.details).toEqual(expect.arrayContaining([expect.objectContaining({ parameter })]));
    expect(
      (await harness.control<{ collection: unknown[] }>('GET', '/_sim/webhook_subscriptions')).collection,
    ).toHaveLength(0);
  },
);

test('a free plan gets 403 with the upgrade message', async () => {
  const free = await harness.createUser({ name: 'Fay Free', email: 'fay@example.test', plan: 'free' });
  const answer = await userHook(free, 'https://hooks.test/free');
  expect(answer.status).toBe(403);
  expect(answer.body.message).toBe('Please upgrade your Calendly account to Standard');
});

test('an upgrade lets the user create webhooks and a downgrade refuses new ones again, keeping those that exist', async () => {
  const fay = await harness.createUser({ name: 'Fay Free', email: 'fay@example.test', plan: 'free' });
  expect((await userHook(fay, 'https://hooks.test/fay/1')).status).toBe(403);
  const upgraded = await harness.call('PATCH', `/_sim/users/${fay.uuid}`, { body: { plan: 'standard' } });
  expect(upgraded).toMatchObject({ status: 200, body: { uri: fay.uri, plan: 'standard' } });
  expect((await userHook(fay, 'https://hooks.test/fay/1')).status).toBe(201);
  await harness.control('PATCH', `/_sim/users/${fay.uuid}`, { plan: 'free' });
  const refused = await userHook(fay, 'https://hooks.test/fay/2');
  expect(refused.status).toBe(403);
  expect(refused.body.message).toBe('Please upgrade your Calendly account to Standard');
  const query = new URLSearchParams({ organization: fay.organization, scope: 'user', user: fay.uri });
  const listed = await harness.call<{ collection: { callback_url: string }[] }>(
    'GET',
    `/webhook_subscriptions?${query.toString()}`,
    { token: fay.personal_access_token },
  );
  expect(listed.body.collection.map((hook) => hook.callback_url)).toEqual(['https://hooks.test/fay/1']);
});

test('an account change names a known user and a plan or role, or changes nothing', async () => {
  const unknown = await harness.call('PATCH', '/_sim/users/00000000-0000-4000-8000-000000000000', {
    body: { plan: 'free' },
  });
  expect(unknown.status).toBe(404);
  for (const body of [{}, { plan: 'gold' }, { plan: 'free', extra: 1 }]) {
    const answer = await harness.call('PATCH', `/_sim/users/${member.uuid}`, { body });
    expect(answer.status).toBe(400);
  }
  const [unchanged] = (
    await harness.control<{ collection: { uri: string; plan: string }[] }>('GET', '/_sim/users')
  ).collection.filter((user) => user.uri === member.uri);
  expect(unchanged).toMatchObject({ plan: 'standard' });
});

test('a member may not ask for organization scope, nor for another user; an owner may', async () => {
  const orgBody = {
    url: 'https://hooks.test/org',
    events: ['invitee.created'],
    organization: owner.organization,
    scope: 'organization',
  };
  const asMember = await harness.call('POST', '/webhook_subscriptions', {
    token: member.personal_access_token,
    body: orgBody,
  });
  expect(asMember.status).toBe(403);
  const forOwner = await userHook(member, 'https://hooks.test/not-mine', { user: owner.uri });
  expect(forOwner.status).toBe(403);
  const otherOrg = await harness.createUser({ name: 'Zed', email: 'zed@example.test' });
  const wrongOrg = await userHook(member, 'https://hooks.test/wrong-org', { organization: otherOrg.organization });
  expect(wrongOrg.status).toBe(403);
  const asOwner = await harness.call('POST', '/webhook_subscriptions', {
    token: owner.personal_access_token,
    body: orgBody,
  });
  expect(asOwner.status).toBe(201);
  expect((asOwner.body.resource as Record<string, unknown>).user).toBeNull();
  // Organization-only events are fine in organization scope.
  const routing = await harness.call('POST', '/webhook_subscriptions', {
    token: owner.personal_access_token,
    body: { ...orgBody, url: 'https://hooks.test/routing', events: ['routing_form_submission.created'] },
  });
  expect(routing.status).toBe(201);
});

test('409 "Hook with this url already exists", with the uniqueness scope the setting chooses', async () => {
  const elsewhere = await harness.createUser({ name: 'Eve Elsewhere', email: 'eve@example.test' });
  const url = 'https://hooks.test/shared';
  expect((await userHook(member, url)).status).toBe(201);
  const duplicate = await userHook(member, url);
  expect(duplicate.status).toBe(409);
  expect(duplicate.body).toEqual({ title: 'Already Exists', message: 'Hook with this url already exists' });
  // Default: global.
  expect((await userHook(elsewhere, url)).status).toBe(409);

  await harness.control('POST', '/_sim/settings', { hookUrlUniqueness: 'organization' });
  expect((await userHook(owner, url)).status).toBe(409);
  expect((await userHook(elsewhere, url)).status).toBe(201);

  await harness.control('POST', '/_sim/settings', { hookUrlUniqueness: 'user' });
  expect((await userHook(owner, url)).status).toBe(201);
  expect((await userHook(member, url)).status).toBe(409);
});

test('a disabled subscription still holds its url until it is deleted', async () => {
  const created = await userHook(member, 'https://hooks.test/d');
  const uri = (created.body.resource as { uri: string }).uri;
  await harness.control('POST', `/_sim/webhook_subscriptions/${uri.split('/').pop()}/disable`);
  const got = await harness.call('GET', uri, { token: member.personal_access_token });
  expect((got.body.resource as { state: string }).state).toBe('disabled');
  expect((await userHook(member, 'https://hooks.test/d')).status).toBe(409);
  const deleted = await harness.call('DELETE', uri, { token: member.personal_access_token });
  expect(deleted.status).toBe(204);
  expect((await harness.call('GET', uri, { token: member.personal_access_token })).status).toBe(404);
  expect((await harness.call('DELETE', uri, { token: member.personal_access_token })).status).toBe(404);
  expect((await userHook(member, 'https://hooks.test/d')).status).toBe(201);
});

test('a member cannot read or delete another user’s subscription; the owner can', async () => {
  const created = await userHook(member, 'https://hooks.test/m');
  const uri = (created.body.resource as { uri: string }).uri;
  const colleague = await harness.createUser({
    name: 'Cole',
    email: 'cole@example.test',
    organization: owner.organization,
  });
  expect((await harness.call('GET', uri, { token: colleague.personal_access_token })).status).toBe(403);
  expect((await harness.call('DELETE', uri, { token: colleague.personal_access_token })).status).toBe(403);
  const stranger = await harness.createUser({ name: 'Stan', email: 'stan@example.test' });
  expect((await harness.call('GET', uri, { token: stranger.personal_access_token })).status).toBe(404);
  expect((await harness.call('GET', uri, { token: owner.personal_access_token })).status).toBe(200);
  expect((await harness.call('DELETE', uri, { token: owner.personal_access_token })).status).toBe(204);
});

test('lists require organization and scope, and cap count at 100', async () => {
  const list = (query: string) =>
    harness.call('GET', `/webhook_subscriptions?${query}`, { token: member.personal_access_token });
  const missing = await list('');
  expect(missing.status).toBe(400);
  expect((missing.body.details as { parameter: string }[]).map((d) => d.parameter).sort()).toEqual([
    'organization',
    'scope',
  ]);
  const org = encodeURIComponent(member.organization);
  expect((await list(`organization=${org}&scope=user`)).status).toBe(400);
  const tooMany = await list(`organization=${org}&scope=user&user=${encodeURIComponent(member.uri)}&count=101`);
  expect(tooMany.status).toBe(400);
  expect(tooMany.body.details).toEqual([{ parameter: 'count', message: 'must be less than or equal to 100' }]);
  const badToken = await list(
    `organization=${org}&scope=user&user=${encodeURIComponent(member.uri)}&page_token=garbage`,
  );
  expect(badToken.status).toBe(400);
  expect((await list(`organization=${org}&scope=organization`)).status).toBe(403);
});

test('pages across more than 100 subscriptions with count, page_token and the pagination object', async () => {
  await harness.control('POST', '/_sim/settings', { hookUrlUniqueness: 'user' });
  const total = 130;
  for (let i = 0; i < total; i += 1) expect((await userHook(member, `https://hooks.test/p/${i}`)).status).toBe(201);
  // Someone else's subscriptions never appear in this user's list.
  expect((await userHook(owner, 'https://hooks.test/p/owner')).status).toBe(201);

  type ListPage = {
    collection: { uri: string; callback_url: string }[];
    pagination: {
      count: number;
      next_page: string | null;
      next_page_token: string | null;
      previous_page: string | null;
      previous_page_token: string | null;
    };
  };
  const query = `organization=${encodeURIComponent(member.organization)}&scope=user&user=${encodeURIComponent(member.uri)}`;
  const first = await harness.call<ListPage>('GET', `/webhook_subscriptions?${query}&count=100`, {
    token: member.personal_access_token,
  });
  expect(first.status).toBe(200);
  expect(first.body.collection).toHaveLength(100);
  expect(first.body.pagination.count).toBe(100);
  expect(first.body.pagination.previous_page_token).toBeNull();
  expect(first.body.pagination.next_page_token).toEqual(expect.any(String));
  expect(first.body.pagination.next_page).toContain(`page_token=${first.body.pagination.next_page_token}`);

  const second = await harness.call<ListPage>('GET', first.body.pagination.next_page!, {
    token: member.personal_access_token,
  });
  expect(second.body.collection).toHaveLength(30);
  expect(second.body.pagination.next_page).toBeNull();
  expect(second.body.pagination.next_page_token).toBeNull();
  const seen = [...first.body.collection, ...second.body.collection].map((s) => s.callback_url);
  expect(new Set(seen).size).toBe(total);
  expect(seen).toEqual(Array.from({ length: total }, (_, i) => `https://hooks.test/p/${i}`));

  const back = await harness.call<ListPage>('GET', second.body.pagination.previous_page!, {
    token: member.personal_access_token,
  });
  expect(back.body.collection.map((s) => s.uri)).toEqual(first.body.collection.map((s) => s.uri));

  const byDefault = await harness.call<ListPage>('GET', `/webhook_subscriptions?${query}`, {
    token: member.personal_access_token,
  });
  expect(byDefault.body.collection).toHaveLength(20);
  const newestFirst = await harness.call<ListPage>(
    'GET',
    `/webhook_subscriptions?${query}&sort=created_at:desc&count=1`,
    {
      token: member.personal_access_token,
    },
  );
  expect(newestFirst.body.collection[0]!.callback_url).toBe(`https://hooks.test/p/${total - 1}`);
});

test('a callback URL already subscribed is refused with 409 until its subscription is deleted', async () => {
  const first = await userHook(member, 'https://hooks.test/taken');
  expect(first.status).toBe(201);
  const again = await userHook(owner, 'https://hooks.test/taken');
  expect(again.status).toBe(409);
  expect(again.body.title).toBe('Already Exists');
  const uuid = (first.body as { resource: { uri: string } }).resource.uri.split('/').pop();
  expect(
    (await harness.call('DELETE', `/webhook_subscriptions/${uuid}`, { token: member.personal_access_token })).status,
  ).toBe(204);
  expect((await userHook(owner, 'https://hooks.test/taken')).status).toBe(201);
});

test('429 past the per-minute limit, with X-RateLimit-* on every answer; a free plan gets a tenth', async () => {
  await harness.control('POST', '/_sim/settings', { apiRequestsPerUserPerMinute: 5 });
  for (let i = 1; i <= 5; i += 1) {
    const answer = await harness.call('GET', '/users/me', { token: member.personal_access_token });
    expect(answer.status).toBe(200);
    expect(answer.headers.get('x-ratelimit-limit')).toBe('5');
    expect(answer.headers.get('x-ratelimit-remaining')).toBe(String(5 - i));
    expect(Number(answer.headers.get('x-ratelimit-reset'))).toBeGreaterThan(0);
  }
  const limited = await harness.call('GET', '/users/me', { token: member.personal_access_token });
  expect(limited.status).toBe(429);
  expect(limited.body.title).toBe('Too Many Requests');
  expect(limited.headers.get('x-ratelimit-remaining')).toBe('0');
  expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
  // Per user: the owner is not limited by the member's calls.
  expect((await harness.call('GET', '/users/me', { token: owner.personal_access_token })).status).toBe(200);

  await harness.control('POST', '/_sim/faults', { clock_offset_ms: 60_000 });
  expect((await harness.call('GET', '/users/me', { token: member.personal_access_token })).status).toBe(200);
  // The control API counts each user's calls, the refused one included.
  const usage = await harness.control<{ requests: number; rate_limited: number }>(
    'GET',
    `/_sim/api_requests?user=${encodeURIComponent(member.uri)}`,
  );
  expect(usage).toMatchObject({ requests: 7, rate_limited: 1 });
  // Without ?user=: every user's calls together (the owner's one included).
  expect(await harness.control('GET', '/_sim/api_requests')).toMatchObject({ requests: 8, rate_limited: 1, users: 2 });
  expect((await harness.call('GET', '/_sim/api_requests?user=nobody')).status).toBe(400);

  await harness.control('POST', '/_sim/settings', { apiRequestsPerUserPerMinute: 20 });
  const free = await harness.createUser({ name: 'Fay Free', email: 'fay@example.test', plan: 'free' });
  const freeAnswer = await harness.call('GET', '/users/me', { token: free.personal_access_token });
  expect(freeAnswer.headers.get('x-ratelimit-limit')).toBe('2');
});
