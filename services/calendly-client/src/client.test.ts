import { randomBytes } from 'node:crypto';
import { startSimulator, type Simulator } from '@calsync/calendly-sim';
import { authorizeWithPkce, createSimUser, simControl, type SimUser } from '@calsync/calendly-sim/testing';
import { createMetricsRegistry, type Registry } from '@calsync/service-kit';
import { captureLogger } from '@calsync/service-kit/testing';
import { CalendlyError, createCalendlyClient, type CalendlyClient } from './index';

let sim: Simulator;
let lines: string[];
let registry: Registry;
let client: CalendlyClient;
const secrets = new Set<string>();

function newClient(overrides: Partial<Parameters<typeof createCalendlyClient>[0]> = {}): CalendlyClient {
  return createCalendlyClient({
    apiUrl: sim.url,
    authUrl: sim.url,
    clientId: 'calsync-dev-client',
    clientSecret: 'calsync-dev-secret',
    timeoutMs: 2_000,
    maxRetries: 2,
    retryBaseDelayMs: 20,
    maxRetryDelayMs: 3_000,
    log: captured.log,
    registry,
    ...overrides,
  });
}

const captured = captureLogger('calendly-client-test');

const control = <T = unknown>(method: string, path: string, body?: unknown) =>
  simControl<T>(sim, method, `/_sim${path}`, body);

async function newUser(overrides: Record<string, string> = {}): Promise<SimUser> {
  const user = await createSimUser(sim, overrides);
  secrets.add(user.personal_access_token);
  return user;
}

/** Walks the OAuth authorize step as the user would, returning the code and the PKCE verifier. */
const authorize = (user: SimUser, redirectUri: string) =>
  authorizeWithPkce(sim, user, { redirectUri, state: 'some-state' });

async function metricValue(name: string, labels: Record<string, string>): Promise<number> {
  const metric = (await registry.getMetricsAsJSON()).find((m) => m.name === name);
  const value = metric?.values.find((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l));
  return value?.value ?? 0;
}

beforeAll(async () => {
  sim = await startSimulator({ port: 0 });
});

beforeEach(async () => {
  registry = createMetricsRegistry('calendly-client-test');
  client = newClient();
  await control('DELETE', '/faults');
});

afterAll(async () => {
  await sim.stop();
  // No token, refresh token or code may ever reach a log line.
  for (const line of captured.lines) for (const secret of secrets) expect(line).not.toContain(secret);
  lines = captured.lines;
  expect(lines.length).toBeGreaterThan(0);
});

describe('calendly client', () => {
  it('reads the current user with a personal access token', async () => {
    const user = await newUser();
    const me = await client.getCurrentUser(user.personal_access_token);
    expect(me.uri).toBe(user.uri);
    expect(me.current_organization).toBe(user.organization);
    expect(await metricValue('calendly_requests_total', { operation: 'getCurrentUser', status: '200' })).toBe(1);
  });

  it('turns a refused token into UNAUTHENTICATED without repeating the token', async () => {
    const token = `not-a-token-${randomBytes(8).toString('hex')}`;
    secrets.add(token);
    const error = await client.getCurrentUser(token).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CalendlyError);
    const calendlyError = error as CalendlyError;
    expect(calendlyError.status).toBe(401);
    expect(calendlyError.transient).toBe(false);
    expect(calendlyError.message).not.toContain(token);
    expect(calendlyError.safeMessage).not.toContain(token);
  });

  it('retries Calendly 5xx answers and then succeeds', async () => {
    const user = await newUser();
    await control('POST', '/faults', { api_errors: { status: 503, count: 2, path: '/users/me' } });
    const me = await client.getCurrentUser(user.personal_access_token);
    expect(me.uri).toBe(user.uri);
    expect(await metricValue('calendly_requests_total', { operation: 'getCurrentUser', status: '503' })).toBe(2);
    expect(await metricValue('calendly_requests_total', { operation: 'getCurrentUser', status: '200' })).toBe(1);
  });

  it('gives up after maxRetries and answers UNAVAILABLE', async () => {
    const user = await newUser();
    await control('POST', '/faults', { api_errors: { status: 502, count: 5, path: '/users/me' } });
    const error = (await client.getCurrentUser(user.personal_access_token).catch((e: unknown) => e)) as CalendlyError;
    expect(error.status).toBe(502);
    expect(error.transient).toBe(true);
    expect(await metricValue('calendly_requests_total', { operation: 'getCurrentUser', status: '502' })).toBe(3);
  });

  it('waits for X-RateLimit-Reset after a 429 and then succeeds', async () => {
    const user = await newUser();
    await control('POST', '/settings', { apiRequestsPerUserPerMinute: 1 });
    try {
      await client.getCurrentUser(user.personal_access_token);
      // Move the simulator's clock to just before its minute window ends: its reset is now ~2 s.
      await control('POST', '/faults', { clock_offset_ms: 58_500 });
      const started = Date.now();
      const me = await client.getCurrentUser(user.personal_access_token);
      const waited = Date.now() - started;
      expect(me.uri).toBe(user.uri);
      expect(waited).toBeGreaterThanOrEqual(1_000);
      expect(waited).toBeLessThan(3_500);
      expect(await metricValue('calendly_requests_total', { operation: 'getCurrentUser', status: '429' })).toBe(1);
    } finally {
      await control('POST', '/settings', { apiRequestsPerUserPerMinute: 500 });
    }
  });

  it('never sleeps past maxRetryDelayMs: a distant reset fails at once with RESOURCE_EXHAUSTED', async () => {
    const user = await newUser();
    await control('POST', '/faults', { api_errors: { status: 429, count: 1, path: '/users/me' } });
    const started = Date.now();
    const error = (await client.getCurrentUser(user.personal_access_token).catch((e: unknown) => e)) as CalendlyError;
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(error.status).toBe(429);
    expect(error.retryAfterSeconds).toBe(60);
    expect(error.transient).toBe(true);
    expect(error.safeMessage).toContain('retry in 60 s');
  });

  it('times out a slow answer and reports UNAVAILABLE', async () => {
    const user = await newUser();
    await control('POST', '/faults', { latency: { api_ms: 600 } });
    const slowClient = newClient({ timeoutMs: 150, maxRetries: 1 });
    const error = (await slowClient
      .getCurrentUser(user.personal_access_token)
      .catch((e: unknown) => e)) as CalendlyError;
    expect(error.failure).toBe('timeout');
    expect(error.transient).toBe(true);
    // A read is safe to repeat after a timeout.
    expect(await metricValue('calendly_requests_total', { operation: 'getCurrentUser', status: 'timeout' })).toBe(2);
  });

  it('does not repeat a token request that timed out: Calendly may still have used the refresh token', async () => {
    await control('POST', '/faults', { latency: { api_ms: 600 } });
    const slowClient = newClient({ timeoutMs: 150, maxRetries: 2 });
    const error = (await slowClient.refreshToken('whatever-refresh-token').catch((e: unknown) => e)) as CalendlyError;
    expect(error.failure).toBe('timeout');
    expect(await metricValue('calendly_requests_total', { operation: 'refreshToken', status: 'timeout' })).toBe(1);
  });

  it('reports an unreachable Calendly as UNAVAILABLE', async () => {
    const unreachable = newClient({ apiUrl: 'http://127.0.0.1:9', maxRetries: 1 });
    const error = (await unreachable.getCurrentUser('x').catch((e: unknown) => e)) as CalendlyError;
    expect(error.failure).toBe('network');
    expect(error.transient).toBe(true);
  });

  it('exchanges a code with PKCE, refreshes once, and refuses the spent refresh token with invalid_grant', async () => {
    const user = await newUser();
    const redirectUri = 'https://app.example.com/callback';
    const { code, verifier } = await authorize(user, redirectUri);
    const tokens = await client.exchangeCode({ code, redirectUri, codeVerifier: verifier });
    secrets.add(tokens.access_token).add(tokens.refresh_token).add(code);
    expect(tokens.owner).toBe(user.uri);
    expect(tokens.organization).toBe(user.organization);
    expect(tokens.expires_in).toBe(7200);

    const refreshed = await client.refreshToken(tokens.refresh_token);
    secrets.add(refreshed.access_token).add(refreshed.refresh_token);
    expect(refreshed.refresh_token).not.toBe(tokens.refresh_token);
    expect((await client.getCurrentUser(refreshed.access_token)).uri).toBe(user.uri);

    const reuse = (await client.refreshToken(tokens.refresh_token).catch((e: unknown) => e)) as CalendlyError;
    expect(reuse.status).toBe(400);
    expect(reuse.oauthError).toBe('invalid_grant');
    expect(reuse.message).not.toContain(tokens.refresh_token);
  });

  it('refuses a code presented with the wrong PKCE verifier', async () => {
    const user = await newUser();
    const redirectUri = 'https://app.example.com/callback';
    const { code } = await authorize(user, redirectUri);
    secrets.add(code);
    const error = (await client
      .exchangeCode({ code, redirectUri, codeVerifier: randomBytes(32).toString('base64url') })
      .catch((e: unknown) => e)) as CalendlyError;
    expect(error.oauthError).toBe('invalid_grant');
  });

  it('revokes a token, after which introspection says it is inactive', async () => {
    const user = await newUser();
    const redirectUri = 'https://app.example.com/callback';
    const { code, verifier } = await authorize(user, redirectUri);
    const tokens = await client.exchangeCode({ code, redirectUri, codeVerifier: verifier });
    secrets.add(tokens.access_token).add(tokens.refresh_token);
    expect((await client.introspectToken(tokens.refresh_token)).active).toBe(true);
    await client.revokeToken(tokens.refresh_token);
    expect((await client.introspectToken(tokens.refresh_token)).active).toBe(false);
    expect((await client.introspectToken(tokens.access_token)).active).toBe(false);
  });

  it('refuses OAuth calls when the client credentials are not configured', async () => {
    const patOnly = newClient({ clientId: undefined, clientSecret: undefined });
    await expect(patOnly.refreshToken('x')).rejects.toThrow('the OAuth client id and secret are not configured');
  });

  it('creates, pages through, reads and deletes webhook subscriptions; a second delete is not_found', async () => {
    const user = await newUser({ role: 'owner' });
    const token = user.personal_access_token;
    const created = [];
    for (let i = 0; i < 3; i++) {
      created.push(
        await client.createWebhookSubscription(token, {
          url: `https://hooks.example.com/${randomBytes(6).toString('hex')}`,
          events: ['invitee.created', 'invitee.canceled'],
          organization: user.organization,
          scope: 'user',
          user: user.uri,
          signingKey: randomBytes(16).toString('hex'),
        }),
      );
    }
    expect(created[0]!.state).toBe('active');
    const query = { organization: user.organization, scope: 'user' as const, user: user.uri };
    const first = await client.listWebhookSubscriptions(token, { ...query, count: 2 });
    expect(first.collection).toHaveLength(2);
    expect(first.pagination.next_page_token).toEqual(expect.any(String));
    const all = await client.listAllWebhookSubscriptions(token, query);
    expect(all.map((s) => s.uri).sort()).toEqual(created.map((s) => s.uri).sort());

    expect((await client.getWebhookSubscription(token, created[0]!.uri)).uri).toBe(created[0]!.uri);
    expect(await client.deleteWebhookSubscription(token, created[0]!.uri)).toBe('deleted');
    expect(await client.deleteWebhookSubscription(token, created[0]!.uri)).toBe('not_found');
    const missing = (await client
      .getWebhookSubscription(token, created[0]!.uri)
      .catch((e: unknown) => e)) as CalendlyError;
    expect(missing.status).toBe(404);
    expect(missing.safeMessage).toBe('Calendly found nothing for getWebhookSubscription');
  });

  it('refuses a duplicate callback URL with 409, not a transient failure', async () => {
    const user = await newUser();
    const input = {
      url: `https://hooks.example.com/${randomBytes(6).toString('hex')}`,
      events: ['invitee.created'],
      organization: user.organization,
      scope: 'user' as const,
      user: user.uri,
    };
    await client.createWebhookSubscription(user.personal_access_token, input);
    const error = (await client
      .createWebhookSubscription(user.personal_access_token, input)
      .catch((e: unknown) => e)) as CalendlyError;
    expect(error.status).toBe(409);
    expect(error.transient).toBe(false);
  });

  it("carries Calendly's message on a 403 (a free plan cannot have webhooks)", async () => {
    const user = await newUser({ plan: 'free' });
    const error = (await client
      .createWebhookSubscription(user.personal_access_token, {
        url: `https://hooks.example.com/${randomBytes(6).toString('hex')}`,
        events: ['invitee.created'],
        organization: user.organization,
        scope: 'user',
        user: user.uri,
      })
      .catch((e: unknown) => e)) as CalendlyError;
    expect(error.status).toBe(403);
    expect(error.safeMessage).toContain('Please upgrade your Calendly account to Standard');
  });

  it('names the parameter Calendly refused in the safe message', async () => {
    const user = await newUser();
    const error = (await client
      .listScheduledEvents(user.personal_access_token, { user: user.uri, count: 1000 })
      .catch((e: unknown) => e)) as CalendlyError;
    expect(error.status).toBe(400);
    expect(error.safeMessage).toContain('count');
  });

  it('lists scheduled events and their invitees', async () => {
    const user = await newUser();
    const start = new Date(Date.now() + 86_400_000);
    const booking = await control<{ scheduled_event: { uri: string } }>('POST', '/bookings', {
      user: user.uri,
      start_time: start.toISOString(),
      end_time: new Date(start.getTime() + 1_800_000).toISOString(),
      invitee: { name: 'Grace Hopper', email: 'grace@example.com' },
    });
    const events = await client.listScheduledEvents(user.personal_access_token, {
      user: user.uri,
      sort: 'start_time:asc',
      count: 10,
    });
    expect(events.collection).toHaveLength(1);
    // The page carries where the user's per-minute budget stands, for callers that pace themselves.
    expect(events.rateLimit).toEqual({ limit: 500, remaining: expect.any(Number), resetSeconds: expect.any(Number) });
    expect(events.rateLimit!.remaining).toBeLessThan(500);
    const eventUri = events.collection[0]!.uri;
    expect(eventUri).toBe(booking.scheduled_event.uri);
    const invitees = await client.listEventInvitees(user.personal_access_token, eventUri);
    expect(invitees.collection.map((invitee) => invitee.email)).toEqual(['grace@example.com']);
    expect(invitees.pagination.next_page_token).toBeNull();
  });

  it('sends the token only to apiUrl, whatever host a resource URI names', async () => {
    const user = await newUser();
    const created = await client.createWebhookSubscription(user.personal_access_token, {
      url: `https://hooks.example.com/${randomBytes(6).toString('hex')}`,
      events: ['invitee.created'],
      organization: user.organization,
      scope: 'user',
      user: user.uri,
    });
    const elsewhere = created.uri.replace(sim.url, 'https://elsewhere.example.com');
    expect((await client.getWebhookSubscription(user.personal_access_token, elsewhere)).uri).toBe(created.uri);
    await expect(client.getWebhookSubscription(user.personal_access_token, '../users/me')).rejects.toThrow(RangeError);
  });
});
