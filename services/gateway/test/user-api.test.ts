import { createHash } from 'node:crypto';
import { SignJWT } from 'jose';
import {
  Browser,
  connectWithOAuth as connectUserWithOAuth,
  startOAuthConnect,
  jwtSecret,
  rawRequest,
  waitFor,
  startGatewaySystem,
  type DeliveryAttempt,
  type GatewaySystem,
  type SimUser,
} from './harness';

let system: GatewaySystem;
let alice: SimUser;
let bob: SimUser;
let carol: SimUser;
let victim: SimUser;
let spaUser: SimUser;

beforeAll(async () => {
  system = await startGatewaySystem('gwuserapi');
  [alice, carol, victim, spaUser] = await Promise.all(
    ['alice', 'carol', 'victim', 'spa'].map((name) => system.createSimUser(name)),
  );
  bob = await system.connectWithToken('user-bob');
}, 120_000);

afterAll(async () => {
  await system?.stop();
});

const startConnect = (browser: Browser, userId: string, calendlyUser: SimUser, accept?: string) =>
  startOAuthConnect(system, browser, userId, calendlyUser, accept);
const connectWithOAuth = (userId: string, calendlyUser: SimUser) => connectUserWithOAuth(system, userId, calendlyUser);

const callbackPath = '/api/calendly/oauth/callback';

describe('OAuth connect', () => {
  it('sends the browser to Calendly with PKCE and our callback, and back to the app connected', async () => {
    const start = await fetch(`${system.url}/api/calendly/connect`, {
      headers: { authorization: `Bearer ${await system.jwtFor('user-alice')}` },
      redirect: 'manual',
    });
    const authorize = new URL(start.headers.get('location')!);
    expect(`${authorize.origin}${authorize.pathname}`).toBe(`${system.sim.url}/oauth/authorize`);
    expect(authorize.searchParams.get('redirect_uri')).toBe(`${system.url}/api/calendly/oauth/callback`);
    expect(authorize.searchParams.get('code_challenge_method')).toBe('S256');
    expect(authorize.searchParams.get('state')).toBeTruthy();

    const landed = await connectWithOAuth('user-alice', alice);
    expect(landed.status).toBe(200);
    expect(landed.url).toBe(`${system.appUrl}?calendly=connected`);
    expect(await landed.text()).toBe('<p>the app</p>');

    const connection = await system.api('/api/calendly/connection', { userId: 'user-alice' });
    expect(connection).toMatchObject({
      status: 200,
      body: {
        connected: true,
        calendlyUserUri: alice.uri,
        kind: 'oauth',
        state: 'active',
        webhook: {
          state: 'active',
          signingKeySource: 'application',
          events: expect.arrayContaining(['invitee.created']),
        },
      },
    });
  });

  it('refuses a callback that arrives in another browser than the one that started the connect, linking nothing', async () => {
    // Login CSRF: mallory starts a connect for himself and gets the victim to approve his link.
    const mallorys = new Browser(system.url);
    const authorize = await startConnect(mallorys, 'user-mallory', victim);
    const victims = new Browser(system.url);
    const landed = await victims.get(authorize.toString(), {
      stopAt: (location) => location.origin === system.url && location.pathname !== callbackPath,
    });
    expect(landed.url.toString()).toBe(`${system.appUrl}?calendly=error&reason=browser_mismatch`);
    expect((await system.api('/api/calendly/connection', { userId: 'user-mallory' })).body.connected).toBe(false);
    expect(await system.simCall(`/_sim/webhook_subscriptions?user=${encodeURIComponent(victim.uri)}`)).toMatchObject({
      collection: [],
    });
  });

  it('refuses the callback in a browser whose cookie belongs to another connect', async () => {
    const browser = new Browser(system.url);
    const mine = await startConnect(browser, 'user-mallory', victim);
    const other = new Browser(system.url);
    const theirs = await startConnect(other, 'user-mallory', victim);
    expect(mine.searchParams.get('state')).not.toBe(theirs.searchParams.get('state'));
    const landed = await browser.get(theirs.toString(), {
      stopAt: (location) => location.pathname !== callbackPath && location.origin === system.url,
    });
    expect(landed.url.search).toBe('?calendly=error&reason=browser_mismatch');
    expect((await system.api('/api/calendly/connection', { userId: 'user-mallory' })).body.connected).toBe(false);
  });

  it('binds the connect with a short-lived HttpOnly SameSite cookie', async () => {
    const response = await fetch(`${system.url}/api/calendly/connect`, {
      headers: { authorization: `Bearer ${await system.jwtFor('user-mallory')}` },
      redirect: 'manual',
    });
    const [cookie] = response.headers.getSetCookie();
    expect(cookie).toMatch(/^calsync-connect=[A-Za-z0-9_-]{43}; Path=\/; Max-Age=(5\d\d|600); HttpOnly; SameSite=Lax$/);
  });

  it('gives a single-page app the authorize URL as JSON instead of a redirect', async () => {
    const answer = await system.api('/api/calendly/connect', { userId: 'user-alice' });
    expect(answer.status).toBe(200);
    expect(String(answer.body.authorizeUrl)).toMatch(new RegExp(`^${system.sim.url}/oauth/authorize\\?`));
    expect(answer.headers.get('cache-control')).toBe('no-store');
    // The page then navigates to it; the browser that fetched the URL finishes the connect.
    const browser = new Browser(system.url);
    const authorize = await startConnect(browser, 'user-spa', spaUser, 'application/json');
    const landed = await browser.get(authorize.toString());
    expect(landed.url.toString()).toBe(`${system.appUrl}?calendly=connected`);
    expect((await system.api('/api/calendly/connection', { userId: 'user-spa' })).body.connected).toBe(true);
    expect((await system.api('/api/calendly/connection', { userId: 'user-spa', method: 'DELETE' })).status).toBe(204);
  });

  it('sends the browser back with a reason when the callback cannot complete', async () => {
    const back = async (query: string, headers: Record<string, string> = {}) => {
      const response = await fetch(`${system.url}/api/calendly/oauth/callback?${query}`, {
        redirect: 'manual',
        headers,
      });
      expect(response.status).toBe(302);
      return new URL(response.headers.get('location')!).search;
    };
    expect(await back('error=access_denied&state=x')).toBe('?calendly=error&reason=access_denied');
    expect(await back('state=only')).toBe('?calendly=error&reason=invalid_callback');
    expect(await back('code=made-up&state=made-up')).toBe('?calendly=error&reason=browser_mismatch');
    // The cookie of a state identity never issued: the browser matches, the state does not.
    const cookieOfMadeUp = `calsync-connect=${createHash('sha256').update('made-up').digest('base64url')}`;
    expect(await back('code=made-up&state=made-up', { cookie: cookieOfMadeUp })).toBe(
      '?calendly=error&reason=state_invalid',
    );
    // Each is an answer, not a fault: one line at info, and no stack trace.
    const failures = system.gatewayLines
      .map((line) => JSON.parse(line) as { msg: string; level: string; reason: string; err?: unknown })
      .filter((entry) => entry.msg === 'calendly connect failed');
    expect(failures.map(({ level, reason }) => ({ level, reason }))).toEqual(
      expect.arrayContaining([
        { level: 'info', reason: 'access_denied' },
        { level: 'info', reason: 'invalid_callback' },
        { level: 'info', reason: 'state_invalid' },
      ]),
    );
    const refused = failures.find((entry) => entry.reason === 'state_invalid')!;
    expect(refused.err).toEqual({ type: 'Error', message: expect.any(String), code: 'FAILED_PRECONDITION' });
  });

  it('refuses to complete the same callback twice, even with its cookie', async () => {
    const browser = new Browser(system.url);
    const authorize = await startConnect(browser, 'user-carol', carol);
    const cookies = [...browser.cookies].map(([name, value]) => `${name}=${value}`).join('; ');
    const toCallback = await fetch(authorize, { redirect: 'manual' });
    const callback = toCallback.headers.get('location')!;
    const first = await browser.get(callback, { stopAt: () => true });
    expect(first.response.headers.get('location')).toBe(`${system.appUrl}?calendly=connected`);
    // The cookie is spent with the state; replayed by hand, the state itself is refused.
    expect(browser.cookies.size).toBe(0);
    const again = await fetch(callback, { redirect: 'manual', headers: { cookie: cookies } });
    expect(again.headers.get('location')).toBe(`${system.appUrl}?calendly=error&reason=state_invalid`);
  });
});

describe('signed-in users only', () => {
  it.each([
    ['no token', undefined, 'Bearer'],
    ['a malformed token', 'Bearer not-a-jwt', 'Bearer error="invalid_token"'],
    ['another scheme', 'Basic dXNlcjpwYXNz', 'Bearer error="invalid_token"'],
  ])('answers 401 to %s', async (_label, authorization, challenge) => {
    const response = await fetch(`${system.url}/api/calendly/connection`, {
      headers: authorization ? { authorization } : {},
    });
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toBe(challenge);
    expect(await response.json()).toEqual({ error: 'unauthorized', message: expect.any(String) });
  });

  it('answers 401 to a token signed with another secret or expired', async () => {
    const forged = await new SignJWT({ sub: 'user-alice' })
      .setProtectedHeader({ alg: 'HS256' })
      .setExpirationTime('5m')
      .sign(new TextEncoder().encode('not-the-gateway-secret-but-long-enough-to-sign'));
    const expired = await system.jwtFor('user-alice', { exp: Math.floor(Date.now() / 1000) - 60 });
    const signed = (claims: Record<string, unknown>) =>
      new SignJWT({ sub: 'user-alice', ...claims })
        .setProtectedHeader({ alg: 'HS256' })
        .sign(new TextEncoder().encode(jwtSecret));
    const now = Math.floor(Date.now() / 1000);
    const withoutExp = await signed({ iat: now });
    const tooOld = await signed({ iat: now - 2 * 3600, exp: now + 3600 });
    const notYet = await signed({ iat: now, nbf: now + 600, exp: now + 900 });
    for (const token of [forged, expired, withoutExp, tooOld, notYet]) {
      const response = await fetch(`${system.url}/api/meetings`, { headers: { authorization: `Bearer ${token}` } });
      expect(response.status).toBe(401);
    }
  });
});

describe('correlation headers from outside', () => {
  it.each([
    ['a non-ASCII tracestate', { tracestate: 'vendor=caf\u00e9' }],
    ['a tab inside tracestate', { tracestate: 'vendor=a\tb' }],
    ['a UTF-8 tracestate', { tracestate: Buffer.from('vendor=café').toString('latin1') }],
    ['a non-ASCII request id', { 'x-request-id': 'caf\u00e9' }],
  ])('never turn a user route into a 5xx: %s', async (_label, trace) => {
    const headers = {
      authorization: `Bearer ${await system.jwtFor('user-bob')}`,
      traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
      ...trace,
    };
    for (const path of ['/api/calendly/connection', '/api/meetings', '/api/calendly/connect']) {
      const response = await rawRequest(`${system.url}${path}`, {
        headers: { ...headers, accept: 'application/json' },
      });
      expect({ path, status: response.status }).toEqual({ path, status: 200 });
    }
  });
});

describe('personal access token connect', () => {
  it('connects and shows the connection with its webhook', async () => {
    const connection = await system.api('/api/calendly/connection', { userId: 'user-bob' });
    expect(connection.body).toMatchObject({
      connected: true,
      calendlyUserUri: bob.uri,
      kind: 'personal_token',
      webhook: { state: 'active', signingKeySource: 'subscription' },
    });
  });

  it.each([
    ['a token Calendly refuses', { token: 'definitely-not-a-token' }, 400, 'token_rejected'],
    ['no token', { notToken: 1 }, 400, 'invalid_request'],
    ['a token with spaces', { token: 'a b' }, 400, 'invalid_request'],
  ])('refuses %s', async (_label, body, status, error) => {
    const answer = await system.api('/api/calendly/token', { userId: 'user-dave', method: 'POST', body });
    expect(answer).toMatchObject({ status, body: { error } });
    expect((await system.api('/api/calendly/connection', { userId: 'user-dave' })).body.connected).toBe(false);
  });

  it('refuses a body that is not JSON', async () => {
    const answer = await system.api('/api/calendly/token', {
      userId: 'user-dave',
      method: 'POST',
      headers: { 'content-type': 'text/plain' },
    });
    expect(answer).toMatchObject({ status: 415, body: { error: 'unsupported_media_type' } });
  });
});

const zeroId = '00000000-0000-4000-8000-000000000000';
const cursorOf = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

describe('meeting filters and cursors', () => {
  it.each([
    [
      'a cursor with an impossible time',
      `cursor=${cursorOf({ t: '2026-13-45T99:99:99.000000Z', id: zeroId })}`,
      'cursor',
    ],
    ['a cursor on February 30th', `cursor=${cursorOf({ t: '2026-02-30T00:00:00.000000Z', id: zeroId })}`, 'cursor'],
    ['a cursor whose id is no UUID', `cursor=${cursorOf({ t: '2026-01-01T00:00:00.000000Z', id: 'x' })}`, 'cursor'],
    ['a cursor that is not base64 JSON', 'cursor=%25%25%25', 'cursor'],
    ['"from" on February 30th', 'from=2026-02-30T00:00:00Z', 'from'],
    ['"to" at hour 24', 'to=2026-01-01T24:00:00Z', 'to'],
    ['"from" in year 0', 'from=0000-01-01T00:00:00Z', 'from'],
    ['"to" with an offset of 25 hours', 'to=2026-01-01T00:00:00+25:00', 'to'],
    ['"limit" zero', 'limit=0', 'limit'],
    ['"status" twice', 'status=active&status=canceled', 'status'],
    ['an unknown parameter', 'page=2', 'page'],
  ])('answers 400 naming the parameter for %s', async (_label, query, name) => {
    const answer = await system.api(`/api/meetings?${query}`, { userId: 'user-alice' });
    expect(answer).toMatchObject({ status: 400, body: { error: 'invalid_request' } });
    expect(String(answer.body.message)).toContain(`"${name}"`);
  });
});

describe('one user never reaches another', () => {
  let aliceMeetingId: string;
  let bobDelivery: DeliveryAttempt;

  beforeAll(async () => {
    await system.book(alice, 1);
    await system.book(alice, 2);
    await system.book(bob, 3);
    bobDelivery = await system.waitForAttempt(
      (a) => a.status === 200 && a.event === 'invitee.created' && JSON.parse(a.body).created_by === bob.uri,
    );
    const meetings = await waitFor(async () => {
      const page = await system.api('/api/meetings', { userId: 'user-alice' });
      const list = page.body.meetings as { id: string }[];
      return list.length === 2 ? list : undefined;
    });
    aliceMeetingId = meetings[0]!.id;
  }, 120_000);

  it("lists only the user's own meetings, newest first, in pages", async () => {
    const first = await system.api('/api/meetings?limit=1', { userId: 'user-alice' });
    expect(first.status).toBe(200);
    const [newest] = first.body.meetings as { id: string; startTime: string; status: string }[];
    expect(newest).toMatchObject({ status: 'active', startTime: '2031-01-01T02:00:00.000Z' });
    expect(first.body.nextCursor).toEqual(expect.any(String));
    const second = await system.api(
      `/api/meetings?limit=1&cursor=${encodeURIComponent(String(first.body.nextCursor))}`,
      {
        userId: 'user-alice',
      },
    );
    expect((second.body.meetings as { startTime: string }[]).map((m) => m.startTime)).toEqual([
      '2031-01-01T01:00:00.000Z',
    ]);
    const bobs = await waitFor(async () => {
      const page = await system.api('/api/meetings', { userId: 'user-bob' });
      const list = page.body.meetings as { id: string }[];
      return list.length === 1 ? list : undefined;
    });
    expect(bobs.map((m) => m.id)).not.toContain(aliceMeetingId);
  });

  it('filters by time and status and refuses bad filters', async () => {
    const window = await system.api('/api/meetings?from=2031-01-01T01:30:00Z&to=2031-01-01T03:00:00Z&status=active', {
      userId: 'user-alice',
    });
    expect((window.body.meetings as { startTime: string }[]).map((m) => m.startTime)).toEqual([
      '2031-01-01T02:00:00.000Z',
    ]);
    const canceled = await system.api('/api/meetings?status=canceled', { userId: 'user-alice' });
    expect(canceled.body.meetings).toEqual([]);
    const bad = await system.api('/api/meetings?from=soon', { userId: 'user-alice' });
    expect(bad).toMatchObject({ status: 400, body: { error: 'invalid_request' } });
  });

  it("answers 404 for another user's meeting, exactly as for one that does not exist", async () => {
    expect((await system.api(`/api/meetings/${aliceMeetingId}`, { userId: 'user-alice' })).status).toBe(200);
    const theirs = await system.api(`/api/meetings/${aliceMeetingId}`, { userId: 'user-bob' });
    const missing = await system.api('/api/meetings/no-such-meeting', { userId: 'user-bob' });
    expect(theirs).toMatchObject({ status: 404, body: { error: 'not_found', message: 'no such meeting' } });
    expect(missing.body).toEqual(theirs.body);
  });

  it("refuses with 403 a delivery signed with the shared application key but sent to another user's URL", async () => {
    const aliceDelivery = await system.waitForAttempt(
      (a) => a.status === 200 && JSON.parse(a.body).created_by === alice.uri,
    );
    const { collection } = await system.simCall<{ collection: { callback_url: string }[] }>(
      `/_sim/webhook_subscriptions?user=${encodeURIComponent(carol.uri)}&state=active`,
    );
    const before = (await system.storedEvents()).length;
    const response = await system.replay(aliceDelivery, { path: new URL(collection[0]!.callback_url).pathname });
    expect(response.status).toBe(403);
    expect(await response.json()).toMatchObject({ error: 'payload_not_for_this_hook' });
    expect((await system.storedEvents()).length).toBe(before);
  });

  it("disconnects only the caller: their webhook and credentials go, everyone else's stay", async () => {
    const gone = await system.api('/api/calendly/connection', { userId: 'user-bob', method: 'DELETE' });
    expect(gone.status).toBe(204);
    expect((await system.api('/api/calendly/connection', { userId: 'user-bob' })).body).toMatchObject({
      connected: false,
      webhook: null,
    });
    const alices = await system.api('/api/calendly/connection', { userId: 'user-alice' });
    expect(alices.body).toMatchObject({ connected: true, calendlyUserUri: alice.uri, webhook: { state: 'active' } });
    const { collection } = await system.simCall<{ collection: { user: string }[] }>(
      '/_sim/webhook_subscriptions?state=active',
    );
    expect(collection.map((s) => s.user).sort()).toEqual([alice.uri, carol.uri].sort());

    // A late delivery to the removed hook is refused and not stored.
    const before = (await system.storedEvents()).length;
    const late = await system.replay(bobDelivery);
    expect(late.status).toBe(404);
    expect((await system.storedEvents()).length).toBe(before);
    // Disconnecting again is harmless.
    expect((await system.api('/api/calendly/connection', { userId: 'user-bob', method: 'DELETE' })).status).toBe(204);
  });
});

test('is ready while subscription and NATS answer', async () => {
  const response = await fetch(`${system.url}/readyz`);
  expect(response.status).toBe(200);
  expect(await response.json()).toEqual({
    ready: true,
    checks: { shutdown: 'running', nats: 'up', subscription: 'serving' },
  });
});
