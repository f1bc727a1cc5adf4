import { join } from 'node:path';
import { spawnService } from '@calsync/service-kit/testing';
import { slot, startHarness, type SimHarness, type SimUser } from '../../test/harness';

let harness: SimHarness;
let ann: SimUser;

beforeAll(async () => {
  harness = await startHarness({ apiRequestsPerUserPerMinute: 1_000 });
});
afterAll(() => harness.stop());
beforeEach(async () => {
  await harness.control('POST', '/_sim/reset');
  ann = await harness.createUser({ name: 'Ann', email: 'ann@example.test' });
});

test('users: created with organization, plan and role; labels share an organization; listed with their tokens', async () => {
  const first = await harness.createUser({
    name: 'Lee',
    email: 'lee@example.test',
    organization: 'Team',
    plan: 'free',
  });
  const second = await harness.createUser({
    name: 'Kai',
    email: 'kai@example.test',
    organization: 'Team',
    role: 'admin',
  });
  const byUri = await harness.createUser({ name: 'Noa', email: 'noa@example.test', organization: first.organization });
  expect(first).toMatchObject({ role: 'owner', plan: 'free' });
  expect(second).toMatchObject({ role: 'admin', plan: 'standard', organization: first.organization });
  expect(byUri).toMatchObject({ role: 'user', organization: first.organization });
  expect(first.uri).toBe(`${harness.sim.url}/users/${first.uuid}`);
  const listed = await harness.control<{ collection: SimUser[] }>('GET', '/_sim/users');
  expect(listed.collection.map((u) => u.personal_access_token)).toContain(second.personal_access_token);
  const unknownOrg = await harness.call('POST', '/_sim/users', {
    body: {
      name: 'X',
      email: 'x@example.test',
      organization: `${harness.sim.url}/organizations/00000000-0000-4000-8000-000000000000`,
    },
  });
  expect(unknownOrg.status).toBe(400);
  const badRole = await harness.call('POST', '/_sim/users', {
    body: { name: 'X', email: 'x@example.test', role: 'god' },
  });
  expect(badRole.status).toBe(400);
  expect((badRole.body.details as { parameter: string }[])[0]!.parameter).toBe('role');
});

test('api_errors fault: the next N Calendly calls answer the status, then service resumes; a path limits it', async () => {
  await harness.control('POST', '/_sim/faults', { api_errors: { status: 503, count: 2 } });
  const statuses = [];
  for (let i = 0; i < 3; i += 1)
    statuses.push((await harness.call('GET', '/users/me', { token: ann.personal_access_token })).status);
  expect(statuses).toEqual([503, 503, 200]);

  await harness.control('POST', '/_sim/faults', { api_errors: { status: 429, count: 1, path: '/oauth/token' } });
  expect((await harness.call('GET', '/users/me', { token: ann.personal_access_token })).status).toBe(200);
  const limited = await harness.call('POST', '/oauth/token', {
    form: { grant_type: 'refresh_token', refresh_token: 'x' },
  });
  expect(limited.status).toBe(429);
  expect(limited.headers.get('retry-after')).toBe('60');
  expect(
    (await harness.call('POST', '/oauth/token', { form: { grant_type: 'refresh_token', refresh_token: 'x' } })).status,
  ).toBe(401);
  // A method limits it too: listing works while creating fails.
  await harness.control('POST', '/_sim/faults', {
    api_errors: { status: 503, count: 1, path: '/webhook_subscriptions', method: 'POST' },
  });
  const listed = await harness.call(
    'GET',
    `/webhook_subscriptions?organization=${encodeURIComponent(ann.organization)}&user=${encodeURIComponent(ann.uri)}&scope=user`,
    { token: ann.personal_access_token },
  );
  expect(listed.status).toBe(200);
  const create = await harness.call('POST', '/webhook_subscriptions', { token: ann.personal_access_token, body: {} });
  expect(create.status).toBe(503);
  expect((await harness.control<{ api_errors: unknown }>('GET', '/_sim/faults')).api_errors).toBeNull();
  // The control API itself is never faulted.
  await harness.control('POST', '/_sim/faults', { api_errors: { status: 500, count: 5 } });
  expect((await harness.call('GET', '/_sim/users')).status).toBe(200);
  const described = await harness.control<{ api_errors: { count: number } }>('GET', '/_sim/faults');
  expect(described.api_errors.count).toBe(5);
});

test('latency fault slows Calendly routes', async () => {
  await harness.control('POST', '/_sim/faults', { latency: { api_ms: 200 } });
  const started = Date.now();
  expect((await harness.call('GET', '/users/me', { token: ann.personal_access_token })).status).toBe(200);
  expect(Date.now() - started).toBeGreaterThanOrEqual(190);
  await harness.control('DELETE', '/_sim/faults');
  const quick = Date.now();
  await harness.call('GET', '/users/me', { token: ann.personal_access_token });
  expect(Date.now() - quick).toBeLessThan(150);
});

test('faults and settings refuse bad input with 400 and change nothing', async () => {
  const badFault = await harness.call('POST', '/_sim/faults', { body: { api_errors: { status: 418, count: 1 } } });
  expect(badFault.status).toBe(400);
  const unknownSubscription = await harness.call('POST', '/_sim/faults', {
    body: { fail_deliveries: { subscription: 'nope', count: 1 } },
  });
  expect(unknownSubscription.status).toBe(400);
  const badSetting = await harness.call('POST', '/_sim/settings', { body: { retry: { baseMs: -1 } } });
  expect(badSetting.status).toBe(400);
  const unknownSetting = await harness.call('POST', '/_sim/settings', { body: { colour: 'blue' } });
  expect(unknownSetting.status).toBe(400);
  expect(harness.sim.settings.retry.baseMs).toBe(30_000);
  const shown = await harness.control<Record<string, unknown>>('GET', '/_sim/settings');
  expect(shown.clientSecret).toBe('[redacted]');
  expect(JSON.stringify(shown)).not.toContain('calsync-dev-application-signing-key');
  const malformed = await fetch(`${harness.sim.url}/_sim/users`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: '{"name":',
  });
  expect(malformed.status).toBe(400);
  expect(await malformed.json()).toMatchObject({ title: 'Invalid Argument' });
});

test('settings change at once, nested fields in part, and reset restores the starting settings and empties the world', async () => {
  const changed = await harness.control<{ retry: { baseMs: number; factor: number; windowMs: number } }>(
    'POST',
    '/_sim/settings',
    {
      retry: { baseMs: 5 },
      hookUrlUniqueness: 'user',
    },
  );
  expect(changed.retry).toEqual({ baseMs: 5, factor: 2, windowMs: 86_400_000 });
  expect(harness.sim.settings.hookUrlUniqueness).toBe('user');
  await harness.control('POST', '/_sim/faults', { clock_offset_ms: 5_000 });

  await harness.control('POST', '/_sim/reset');
  expect(harness.sim.settings.retry.baseMs).toBe(30_000);
  expect(harness.sim.settings.hookUrlUniqueness).toBe('global');
  expect(harness.sim.settings.apiRequestsPerUserPerMinute).toBe(1_000);
  expect((await harness.control<{ clock_offset_ms: number }>('GET', '/_sim/faults')).clock_offset_ms).toBe(0);
  expect((await harness.control<{ collection: unknown[] }>('GET', '/_sim/users')).collection).toHaveLength(0);
  expect((await harness.call('GET', '/users/me', { token: ann.personal_access_token })).status).toBe(401);
});

test('unknown routes answer 404 in Calendly’s error shape', async () => {
  const answer = await harness.call('GET', '/no/such/thing', { token: ann.personal_access_token });
  expect(answer.status).toBe(404);
  expect(answer.body).toEqual({
    title: 'Resource Not Found',
    message: 'The server could not find the requested resource.',
  });
});

test('runs as a process: SIM_* settings, logs ready with httpPort, stops on SIGTERM', async () => {
  const service = await spawnService({
    entry: join(__dirname, '..', '..', 'dist', 'main.js'),
    env: {
      SIM_PORT: '0',
      SIM_HOST: '127.0.0.1',
      SIM_CLIENT_ID: 'from-env',
      SIM_RETRY_BASE_MS: '250',
      LOG_LEVEL: 'info',
    },
  });
  try {
    const port = service.ready.httpPort as number;
    expect(port).toBeGreaterThan(0);
    const settings = (await (await fetch(`http://127.0.0.1:${port}/_sim/settings`)).json()) as {
      clientId: string;
      retry: { baseMs: number };
    };
    expect(settings.clientId).toBe('from-env');
    expect(settings.retry.baseMs).toBe(250);
  } finally {
    expect(await service.stop()).toBe(0);
  }
  const broken = spawnService({
    entry: join(__dirname, '..', '..', 'dist', 'main.js'),
    env: { SIM_PORT: 'eighty', LOG_LEVEL: 'info' },
    readyTimeoutMs: 10_000,
  });
  await expect(broken).rejects.toThrow(/SIM_PORT/);
});

test('the control API answers cross-origin pages (the demo page) while Calendly routes do not', async () => {
  const preflight = await fetch(`${harness.sim.url}/_sim/bookings`, {
    method: 'OPTIONS',
    headers: { origin: 'http://127.0.0.1:8080', 'access-control-request-method': 'POST' },
  });
  expect(preflight.status).toBe(204);
  expect(preflight.headers.get('access-control-allow-origin')).toBe('*');
  expect(preflight.headers.get('access-control-allow-headers')).toBe('content-type');
  const health = await fetch(`${harness.sim.url}/_sim/healthz`, { headers: { origin: 'http://127.0.0.1:8080' } });
  expect(health.status).toBe(200);
  expect(health.headers.get('access-control-allow-origin')).toBe('*');
  const calendly = await fetch(`${harness.sim.url}/users/me`, { headers: { origin: 'http://127.0.0.1:8080' } });
  expect(calendly.headers.get('access-control-allow-origin')).toBeNull();
});

test('paced bookings: made one by one from start_at at per_second, each failing on its own; bad requests book nothing', async () => {
  const startAt = Date.now() + 200;
  const booking = (n: number, user = ann.uri) => ({
    user,
    invitee: { name: `Guest ${n}`, email: `guest${n}@invitee.test` },
    ...slot(24 + n),
  });
  const unknownUser = `${harness.sim.url}/users/00000000-0000-4000-8000-000000000000`;
  const paced = await harness.control<{
    collection: {
      invitee?: string;
      scheduled_event?: string;
      error?: { status: number; details?: { parameter: string }[] };
    }[];
  }>('POST', '/_sim/bookings/paced', {
    per_second: 20,
    start_at: new Date(startAt).toISOString(),
    bookings: [booking(0), booking(1), booking(2, unknownUser), booking(3), booking(4)],
  });
  expect(paced.collection).toHaveLength(5);
  expect(paced.collection[2]!.error).toMatchObject({ status: 400, details: [{ parameter: 'user' }] });
  const booked = paced.collection.filter((outcome) => outcome.invitee !== undefined);
  expect(booked).toHaveLength(4);

  const listed = await harness.call<{ collection: { uri: string; created_at: string }[] }>(
    'GET',
    `/scheduled_events?user=${encodeURIComponent(ann.uri)}&count=100`,
    { token: ann.personal_access_token },
  );
  const createdAt = new Map(listed.body.collection.map((event) => [event.uri, Date.parse(event.created_at)]));
  // Booking n is made no earlier than its turn, start_at + n / per_second (the clock is in ms).
  for (const [n, outcome] of paced.collection.entries())
    if (outcome.scheduled_event)
      expect(createdAt.get(outcome.scheduled_event)).toBeGreaterThanOrEqual(startAt + n * 50);

  const refused = [
    { per_second: 20, start_at: new Date(Date.now() + 11 * 60_000).toISOString(), bookings: [booking(5)] },
    { per_second: 20, bookings: Array.from({ length: 1_001 }, (_, n) => booking(5 + n)) },
    { per_second: 0, bookings: [booking(5)] },
    { per_second: 20, start_at: 'soon', bookings: [booking(5)] },
    { per_second: 20, bookings: [booking(5)], extra: true },
  ];
  for (const body of refused) expect((await harness.call('POST', '/_sim/bookings/paced', { body })).status).toBe(400);
  const after = await harness.call<{ collection: unknown[] }>(
    'GET',
    `/scheduled_events?user=${encodeURIComponent(ann.uri)}&count=100`,
    {
      token: ann.personal_access_token,
    },
  );
  expect(after.body.collection).toHaveLength(4);
});
