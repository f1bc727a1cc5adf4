import {
  connectWithOAuth,
  eventually,
  signatureTime,
  slot,
  startHarness,
  startReceiver,
  verifiesWith,
  type SimHarness,
  type SimUser,
} from '../../test/harness';

type Receiver = Awaited<ReturnType<typeof startReceiver>>;
type Envelope = {
  event: string;
  created_at: string;
  created_by: string;
  payload: Record<string, unknown> & { scheduled_event: Record<string, unknown> };
};
type Attempt = {
  subscription: string;
  attempt: number;
  outcome: string;
  status: number | null;
  url: string;
  headers: Record<string, string>;
  body: string;
  started_at: string;
};

const applicationKey = 'calsync-dev-application-signing-key';
let harness: SimHarness;
let receiver: Receiver;
let ann: SimUser;
let bob: SimUser;
let cat: SimUser;

beforeAll(async () => {
  harness = await startHarness({ retry: { baseMs: 40, factor: 2, windowMs: 400 } });
  receiver = await startReceiver();
});
afterAll(async () => {
  await harness.stop();
  await receiver.close();
});
beforeEach(async () => {
  await harness.control('POST', '/_sim/reset');
  receiver.received.length = 0;
  receiver.respond(() => 200);
  ann = await harness.createUser({ name: 'Ann Admin', email: 'ann@example.test', organization: 'Acme' });
  bob = await harness.createUser({ name: 'Bob Member', email: 'bob@example.test', organization: 'Acme' });
  cat = await harness.createUser({ name: 'Cat Outsider', email: 'cat@example.test', organization: 'Other' });
});

async function subscribe(
  user: SimUser,
  path: string,
  options: { scope?: 'user' | 'organization'; key?: string; token?: string; events?: string[] } = {},
) {
  const scope = options.scope ?? 'user';
  const answer = await harness.call<{ resource: { uri: string } }>('POST', '/webhook_subscriptions', {
    token: options.token ?? user.personal_access_token,
    body: {
      url: `${receiver.url}${path}`,
      events: options.events ?? [
        'invitee.created',
        'invitee.canceled',
        'invitee_no_show.created',
        'invitee_no_show.deleted',
      ],
      organization: user.organization,
      scope,
      ...(scope === 'user' ? { user: user.uri } : {}),
      ...(options.key !== undefined ? { signing_key: options.key } : {}),
    },
  });
  if (answer.status !== 201) throw new Error(`subscribe answered ${answer.status}: ${answer.text}`);
  return answer.body.resource.uri;
}

const book = (host: SimUser, name: string, hours = 24, extra: Record<string, unknown> = {}) =>
  harness.control<{ invitee: { uri: string }; scheduled_event: { uri: string } }>('POST', '/_sim/bookings', {
    user: host.uri,
    invitee: { name, email: `${name.toLowerCase().replace(/\W+/g, '.')}@invitee.test` },
    ...slot(hours),
    ...extra,
  });

const envelopes = (path: string) => receiver.at(path).map((r) => JSON.parse(r.raw) as Envelope);
const pending = async () => (await harness.control<{ pending: number }>('GET', '/_sim/deliveries')).pending;
const settled = () => eventually(async () => expect(await pending()).toBe(0));

test('a user-scoped subscription receives only its user’s bookings; an organization-scoped one receives its whole organization’s', async () => {
  await subscribe(ann, '/ann', { key: 'ann-key' });
  await subscribe(bob, '/bob', { key: 'bob-key' });
  await subscribe(ann, '/org', { scope: 'organization', key: 'org-key' });
  await subscribe(cat, '/cat', { key: 'cat-key' });

  const forAnn = await book(ann, 'Invitee One');
  const forBob = await book(bob, 'Invitee Two');
  const forCat = await book(cat, 'Invitee Three');
  await settled();

  const inviteeUris = (path: string) =>
    envelopes(path)
      .map((e) => e.payload.uri)
      .sort();
  expect(inviteeUris('/ann')).toEqual([forAnn.invitee.uri]);
  expect(inviteeUris('/bob')).toEqual([forBob.invitee.uri]);
  expect(inviteeUris('/cat')).toEqual([forCat.invitee.uri]);
  expect(inviteeUris('/org')).toEqual([forAnn.invitee.uri, forBob.invitee.uri].sort());

  // Every delivery verifies with its subscription's own key, and with no other.
  const keys: Record<string, string> = { '/ann': 'ann-key', '/bob': 'bob-key', '/org': 'org-key', '/cat': 'cat-key' };
  expect(receiver.received).toHaveLength(5);
  for (const delivery of receiver.received) {
    const signature = delivery.headers['calendly-webhook-signature'];
    expect(verifiesWith(signature, delivery.raw, keys[delivery.path]!)).toBe(true);
    for (const [path, key] of Object.entries(keys))
      if (path !== delivery.path) expect(verifiesWith(signature, delivery.raw, key)).toBe(false);
    expect(verifiesWith(signature, `${delivery.raw} `, keys[delivery.path]!)).toBe(false);
    expect(Math.abs(signatureTime(signature) - Date.now() / 1000)).toBeLessThan(5);
    expect(delivery.headers['content-type']).toContain('application/json');
  }
  // created_by is whoever created the subscription.
  expect(envelopes('/org').every((e) => e.created_by === ann.uri)).toBe(true);
  expect(envelopes('/bob')[0]!.created_by).toBe(bob.uri);
});

test('payloads have Calendly’s shape: envelope, invitee fields and the scheduled event with its memberships', async () => {
  await subscribe(bob, '/shape', { key: 'k' });
  const booked = await harness.control<{ invitee: { uri: string }; scheduled_event: { uri: string } }>(
    'POST',
    '/_sim/bookings',
    {
      user: bob.uuid,
      invitee: {
        name: 'Iris Invitee',
        email: 'iris@invitee.test',
        first_name: 'Iris',
        last_name: 'Invitee',
        timezone: 'Europe/Paris',
        questions_and_answers: [{ question: 'Topic?', answer: 'Pricing' }],
        tracking: { utm_source: 'newsletter' },
      },
      ...slot(48, 45),
      event_name: 'Intro call',
    },
  );
  await settled();
  const [envelope] = envelopes('/shape');
  expect(Object.keys(envelope!).sort()).toEqual(['created_at', 'created_by', 'event', 'payload']);
  expect(envelope!.event).toBe('invitee.created');
  expect(envelope!.created_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
  expect(envelope!.payload).toMatchObject({
    uri: booked.invitee.uri,
    email: 'iris@invitee.test',
    name: 'Iris Invitee',
    first_name: 'Iris',
    last_name: 'Invitee',
    status: 'active',
    timezone: 'Europe/Paris',
    event: booked.scheduled_event.uri,
    questions_and_answers: [{ question: 'Topic?', answer: 'Pricing', position: 0 }],
    tracking: {
      utm_source: 'newsletter',
      utm_campaign: null,
      utm_medium: null,
      utm_content: null,
      utm_term: null,
      salesforce_uuid: null,
    },
    rescheduled: false,
    old_invitee: null,
    new_invitee: null,
    cancel_url: expect.any(String),
    reschedule_url: expect.any(String),
    no_show: null,
    created_at: expect.any(String),
    updated_at: expect.any(String),
  });
  expect(envelope!.payload.uri).toMatch(new RegExp(`^${booked.scheduled_event.uri}/invitees/[0-9a-f-]{36}$`));
  expect(envelope!.payload.scheduled_event).toMatchObject({
    uri: booked.scheduled_event.uri,
    name: 'Intro call',
    status: 'active',
    start_time: expect.stringMatching(/Z$/),
    end_time: expect.stringMatching(/Z$/),
    event_type: expect.stringContaining('/event_types/'),
    location: { type: expect.any(String) },
    invitees_counter: { total: 1, active: 1, limit: 1 },
    event_memberships: [{ user: bob.uri, user_email: 'bob@example.test', user_name: 'Bob Member' }],
    event_guests: [],
  });
  const start = Date.parse(envelope!.payload.scheduled_event.start_time as string);
  expect(Date.parse(envelope!.payload.scheduled_event.end_time as string) - start).toBe(45 * 60_000);
  // A GET on the URIs in the payload works.
  const invitee = await harness.call('GET', booked.invitee.uri, { token: bob.personal_access_token });
  expect(invitee.status).toBe(200);
  const eventType = await harness.call('GET', envelope!.payload.scheduled_event.event_type as string, {
    token: bob.personal_access_token,
  });
  expect((eventType.body.resource as { name: string }).name).toBe('Intro call');
});

test('OAuth-created subscriptions are signed with the application key, or with the supplied key when the setting says so; unsigned PAT hooks carry no signature', async () => {
  const tokens = await connectWithOAuth(harness, bob);
  await subscribe(bob, '/oauth', { token: tokens.access_token, key: 'supplied-key' });
  await subscribe(ann, '/pat-unsigned');
  const sources = await harness.control<{
    collection: { callback_url: string; signing_key_source: string; created_with: string }[];
  }>('GET', '/_sim/webhook_subscriptions');
  expect(
    sources.collection
      .map((s) => [s.callback_url.replace(receiver.url, ''), s.created_with, s.signing_key_source])
      .sort(),
  ).toEqual([
    ['/oauth', 'oauth', 'application'],
    ['/pat-unsigned', 'personal_access_token', 'none'],
  ]);

  await book(bob, 'First Invitee');
  await book(ann, 'Unsigned Invitee');
  await settled();
  const [first] = receiver.at('/oauth');
  expect(verifiesWith(first!.headers['calendly-webhook-signature'], first!.raw, applicationKey)).toBe(true);
  expect(verifiesWith(first!.headers['calendly-webhook-signature'], first!.raw, 'supplied-key')).toBe(false);
  expect(receiver.at('/pat-unsigned')[0]!.headers['calendly-webhook-signature']).toBeUndefined();

  await harness.control('POST', '/_sim/settings', { oauthSigningKeyMode: 'supplied' });
  await book(bob, 'Second Invitee');
  await settled();
  const second = receiver.at('/oauth')[1]!;
  expect(verifiesWith(second.headers['calendly-webhook-signature'], second.raw, 'supplied-key')).toBe(true);

  await harness.control('POST', '/_sim/settings', {
    oauthSigningKeyMode: 'application',
    applicationSigningKey: 'rotated-app-key',
  });
  await book(bob, 'Third Invitee');
  await settled();
  const third = receiver.at('/oauth')[2]!;
  expect(verifiesWith(third.headers['calendly-webhook-signature'], third.raw, 'rotated-app-key')).toBe(true);
});

test('failed deliveries are retried with growing back-off and the subscription ends disabled; every attempt is logged', async () => {
  await harness.control('POST', '/_sim/settings', { retry: { baseMs: 60, factor: 2, windowMs: 1_200 } });
  const uri = await subscribe(bob, '/failing', { key: 'k' });
  receiver.respond(() => 500);
  await book(bob, 'Never Delivered');
  await eventually(async () => {
    const got = await harness.call<{ resource: { state: string; retry_started_at: string | null } }>('GET', uri, {
      token: bob.personal_access_token,
    });
    expect(got.body.resource.state).toBe('disabled');
    expect(got.body.resource.retry_started_at).toEqual(expect.any(String));
  });
  const attempts = receiver.at('/failing');
  for (const a of attempts) {
    expect(a.raw).toBe(attempts[0]!.raw);
    expect(verifiesWith(a.headers['calendly-webhook-signature'], a.raw, 'k')).toBe(true);
  }

  const log = await harness.control<{
    collection: (Attempt & { next_attempt_in_ms: number | null })[];
    pending: number;
  }>('GET', `/_sim/deliveries?subscription=${encodeURIComponent(uri)}`);
  expect(log.collection.map((a) => a.attempt)).toEqual(attempts.map((_, i) => i + 1));
  expect(
    log.collection.every((a) => a.outcome === 'failed' && a.status === 500 && a.url === `${receiver.url}/failing`),
  ).toBe(true);
  expect(log.collection[0]!.headers['calendly-webhook-signature']).toMatch(/^t=\d+,v1=[0-9a-f]{64}$/);
  expect(log.pending).toBe(0);
  // Back-off doubles from 60 ms; the last wait is cut to the window's end, and the attempt after it is the last.
  const planned = log.collection.map((a) => a.next_attempt_in_ms);
  expect(planned[planned.length - 1]).toBeNull();
  const waits = planned.slice(0, -1) as number[];
  expect(waits.length).toBeGreaterThanOrEqual(2);
  waits.slice(0, -1).forEach((wait, i) => expect(wait).toBe(60 * 2 ** i));
  expect(waits[waits.length - 1]!).toBeLessThanOrEqual(60 * 2 ** (waits.length - 1));
  // The receiver saw each retry no sooner than planned, and the whole run spans the window.
  attempts.slice(1).forEach((a, i) => expect(a.at - attempts[i]!.at).toBeGreaterThanOrEqual(waits[i]! - 5));
  expect(attempts[attempts.length - 1]!.at - attempts[0]!.at).toBeGreaterThanOrEqual(1_200 - 10);

  // Nothing more reaches a disabled subscription, even once the receiver recovers.
  receiver.respond(() => 200);
  await book(bob, 'After Disable');
  await settled();
  expect(receiver.at('/failing')).toHaveLength(attempts.length);
});

test('a redirect is a failure; success after failures clears retry_started_at', async () => {
  const uri = await subscribe(bob, '/flaky', { key: 'k' });
  let calls = 0;
  receiver.respond(() => (++calls === 1 ? 302 : calls === 2 ? 503 : 200));
  await book(bob, 'Eventually Delivered');
  await settled();
  const log = await harness.control<{ collection: Attempt[] }>(
    'GET',
    `/_sim/deliveries?subscription=${uri.split('/').pop()}`,
  );
  expect(log.collection.map((a) => [a.status, a.outcome])).toEqual([
    [302, 'failed'],
    [503, 'failed'],
    [200, 'delivered'],
  ]);
  const got = await harness.call<{ resource: { state: string; retry_started_at: string | null } }>('GET', uri, {
    token: bob.personal_access_token,
  });
  expect(got.body.resource).toMatchObject({ state: 'active', retry_started_at: null });
  const delivered = await harness.control<{ collection: Attempt[] }>('GET', '/_sim/deliveries?outcome=delivered');
  expect(delivered.collection).toHaveLength(1);
  const newest = await harness.control<{ collection: (Attempt & { id: number })[] }>('GET', '/_sim/deliveries?limit=2');
  expect(newest.collection.map((a) => a.status)).toEqual([503, 200]);
  const since = await harness.control<{ collection: Attempt[] }>(
    'GET',
    `/_sim/deliveries?after=${newest.collection[0]!.id}`,
  );
  expect(since.collection.map((a) => a.status)).toEqual([200]);
  expect((await harness.call('GET', '/_sim/deliveries?outcome=maybe')).status).toBe(400);
});

test('other messages are still sent while one is being retried', async () => {
  await harness.control('POST', '/_sim/settings', { retry: { baseMs: 1_000, windowMs: 5_000 } });
  await subscribe(bob, '/mixed', { key: 'k' });
  let first = true;
  receiver.respond(() => {
    if (first) {
      first = false;
      return 500;
    }
    return 200;
  });
  const a = await book(bob, 'Retried One');
  const b = await book(bob, 'Prompt Two');
  await eventually(() => expect(envelopes('/mixed').map((e) => e.payload.uri)).toContain(b.invitee.uri), {
    timeoutMs: 800,
  });
  await settled();
  expect(
    envelopes('/mixed')
      .map((e) => e.payload.uri)
      .filter((u) => u === a.invitee.uri),
  ).toHaveLength(2);
});

test('a cancel, a group event and no-shows fire the matching webhooks', async () => {
  await subscribe(bob, '/life', { key: 'k' });
  const group = await book(bob, 'Gina Group', 30, { event_name: 'Webinar', invitees_limit: 3 });
  const second = await harness.control<{ invitee: { uri: string }; scheduled_event: { invitees_counter: unknown } }>(
    'POST',
    '/_sim/bookings',
    {
      user: bob.uri,
      invitee: { name: 'Hal Group', email: 'hal@invitee.test' },
      scheduled_event: group.scheduled_event.uri,
    },
  );
  expect(second.scheduled_event.invitees_counter).toEqual({ total: 2, active: 2, limit: 3 });
  await harness.control('POST', '/_sim/invitees/cancel', {
    invitee: second.invitee.uri,
    reason: 'busy',
    canceler_type: 'invitee',
  });
  await harness.control('POST', '/_sim/invitees/no_show', { invitee: group.invitee.uri });
  await harness.control('DELETE', '/_sim/invitees/no_show', { invitee: group.invitee.uri });
  await settled();
  const seen = envelopes('/life');
  expect(seen.map((e) => e.event).sort()).toEqual(
    [
      'invitee.canceled',
      'invitee.created',
      'invitee.created',
      'invitee_no_show.created',
      'invitee_no_show.deleted',
    ].sort(),
  );
  const canceled = seen.find((e) => e.event === 'invitee.canceled')!;
  expect(canceled.payload).toMatchObject({
    uri: second.invitee.uri,
    status: 'canceled',
    cancellation: {
      canceled_by: 'Hal Group',
      reason: 'busy',
      canceler_type: 'invitee',
      created_at: expect.any(String),
    },
  });
  // One invitee canceling leaves the group event active.
  expect(canceled.payload.scheduled_event).toMatchObject({
    status: 'active',
    invitees_counter: { total: 2, active: 1, limit: 3 },
  });
  const noShow = seen.find((e) => e.event === 'invitee_no_show.created')!;
  expect(noShow.payload.no_show).toEqual({
    uri: expect.stringContaining('/invitee_no_shows/'),
    created_at: expect.any(String),
  });
  expect(seen.find((e) => e.event === 'invitee_no_show.deleted')!.payload.no_show).toBeNull();
  // Cancelling twice is refused and sends nothing.
  const again = await harness.call('POST', '/_sim/invitees/cancel', { body: { invitee: second.invitee.uri } });
  expect(again.status).toBe(409);
  // A full group event refuses another invitee once its limit was set explicitly.
  for (const name of ['Ivy Group', 'Jon Group']) {
    await harness.call('POST', '/_sim/bookings', {
      body: {
        user: bob.uri,
        invitee: { name, email: `${name.split(' ')[0]}@invitee.test` },
        scheduled_event: group.scheduled_event.uri,
      },
    });
  }
  const full = await harness.call('POST', '/_sim/bookings', {
    body: {
      user: bob.uri,
      invitee: { name: 'Kim', email: 'kim@invitee.test' },
      scheduled_event: group.scheduled_event.uri,
    },
  });
  expect(full.status).toBe(409);
});

test('a reschedule fires invitee.canceled (rescheduled, new_invitee) and invitee.created (old_invitee), in the order the setting chooses', async () => {
  await subscribe(bob, '/moves', { key: 'k' });
  for (const order of ['canceled_first', 'created_first'] as const) {
    receiver.received.length = 0;
    await harness.control('POST', '/_sim/settings', { rescheduleOrder: order });
    const original = await book(bob, `Ray ${order}`, 10);
    await settled();
    const moved = await harness.control<{
      invitee: { uri: string; old_invitee: string };
      scheduled_event: { uri: string };
    }>('POST', '/_sim/invitees/reschedule', { invitee: original.invitee.uri, ...slot(12) });
    expect(moved.invitee.old_invitee).toBe(original.invitee.uri);
    expect(moved.scheduled_event.uri).not.toBe(original.scheduled_event.uri);
    await settled();
    const [, ...pair] = envelopes('/moves');
    expect(pair.map((e) => e.event)).toEqual(
      order === 'canceled_first' ? ['invitee.canceled', 'invitee.created'] : ['invitee.created', 'invitee.canceled'],
    );
    const canceled = pair.find((e) => e.event === 'invitee.canceled')!;
    const created = pair.find((e) => e.event === 'invitee.created')!;
    expect(canceled.payload).toMatchObject({
      uri: original.invitee.uri,
      status: 'canceled',
      rescheduled: true,
      new_invitee: moved.invitee.uri,
    });
    expect(canceled.payload.scheduled_event).toMatchObject({ uri: original.scheduled_event.uri, status: 'canceled' });
    expect(created.payload).toMatchObject({
      uri: moved.invitee.uri,
      status: 'active',
      rescheduled: false,
      old_invitee: original.invitee.uri,
    });
    expect(created.payload.scheduled_event).toMatchObject({ uri: moved.scheduled_event.uri, status: 'active' });
  }
});

test('injected delivery failures: skip never reaches the receiver, send does and is retried anyway', async () => {
  const uri = await subscribe(bob, '/faulty', { key: 'k' });
  await harness.control('POST', '/_sim/faults', { fail_deliveries: { subscription: uri, count: 2 } });
  await book(bob, 'Skipped Twice');
  await settled();
  expect(receiver.at('/faulty')).toHaveLength(1);
  const log = await harness.control<{ collection: (Attempt & { injected: boolean; error: string | null })[] }>(
    'GET',
    '/_sim/deliveries',
  );
  expect(log.collection.map((a) => [a.outcome, a.injected])).toEqual([
    ['failed', true],
    ['failed', true],
    ['delivered', false],
  ]);

  await harness.control('POST', '/_sim/faults', { fail_deliveries: { subscription: uri, count: 1, mode: 'send' } });
  await book(bob, 'Sent Twice');
  await settled();
  const bodies = receiver
    .at('/faulty')
    .slice(1)
    .map((r) => r.raw);
  expect(bodies).toHaveLength(2);
  expect(bodies[0]).toBe(bodies[1]);
});

test('a subscription disabled through the control API gets nothing more', async () => {
  const uri = await subscribe(bob, '/off', { key: 'k' });
  const disabled = await harness.control<{ state: string }>(
    'POST',
    `/_sim/webhook_subscriptions/${uri.split('/').pop()}/disable`,
  );
  expect(disabled.state).toBe('disabled');
  await book(bob, 'Unheard');
  await settled();
  expect(receiver.at('/off')).toHaveLength(0);
  const active = await harness.control<{ collection: unknown[] }>('GET', '/_sim/webhook_subscriptions?state=active');
  expect(active.collection).toHaveLength(0);
});

test('the clock offset moves signature timestamps, so receivers can be tested against stale signatures', async () => {
  await subscribe(bob, '/stale', { key: 'k' });
  await harness.control('POST', '/_sim/faults', { clock_offset_ms: -10 * 60_000 });
  await book(bob, 'Old Signature');
  await settled();
  const [delivery] = receiver.at('/stale');
  expect(Date.now() / 1000 - signatureTime(delivery!.headers['calendly-webhook-signature'])).toBeGreaterThan(590);
  expect(verifiesWith(delivery!.headers['calendly-webhook-signature'], delivery!.raw, 'k')).toBe(true);
});
