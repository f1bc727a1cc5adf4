import { connectWithOAuth, devClient, pkcePair, startHarness, type SimHarness, type SimUser } from '../../test/harness';

let harness: SimHarness;
let ann: SimUser;
const redirectUri = 'http://app.test/callback';

beforeAll(async () => {
  harness = await startHarness();
});
afterAll(() => harness.stop());
beforeEach(async () => {
  await harness.control('POST', '/_sim/reset');
  ann = await harness.createUser({ name: 'Ann Lee', email: 'ann@example.test' });
});

const authorizeQuery = (extra: Record<string, string> = {}) =>
  new URLSearchParams({
    client_id: devClient.id,
    response_type: 'code',
    redirect_uri: redirectUri,
    state: 'xyz',
    ...extra,
  }).toString();

async function codeFor(user: SimUser, challenge: string): Promise<string> {
  const answer = await harness.call(
    'GET',
    `/oauth/authorize?${authorizeQuery({ code_challenge: challenge, code_challenge_method: 'S256', sim_user: user.uuid })}`,
  );
  expect(answer.status).toBe(302);
  const location = new URL(answer.headers.get('location')!);
  expect(`${location.origin}${location.pathname}`).toBe(redirectUri);
  expect(location.searchParams.get('state')).toBe('xyz');
  return location.searchParams.get('code')!;
}

const exchange = (form: Record<string, string>, basic = devClient) =>
  harness.call<Record<string, unknown>>('POST', '/oauth/token', { basic, form });

test('completes the authorization-code dance with PKCE S256: tokens name the owner and organization', async () => {
  const { verifier, challenge } = pkcePair();
  const code = await codeFor(ann, challenge);
  const before = Math.floor(Date.now() / 1000);
  const token = await exchange({
    grant_type: 'authorization_code',
    code,
    redirect_uri: redirectUri,
    code_verifier: verifier,
  });
  expect(token.status).toBe(200);
  expect(token.headers.get('cache-control')).toBe('no-store');
  expect(token.body).toEqual({
    token_type: 'Bearer',
    access_token: expect.any(String),
    refresh_token: expect.any(String),
    scope: 'users:read webhooks:read webhooks:write scheduled_events:read',
    created_at: expect.any(Number),
    expires_in: 7200,
    owner: ann.uri,
    organization: ann.organization,
  });
  expect(token.body.created_at as number).toBeGreaterThanOrEqual(before);
  const me = await harness.call<{ resource: Record<string, unknown> }>('GET', '/users/me', {
    token: token.body.access_token as string,
  });
  expect(me.status).toBe(200);
  expect(me.body.resource).toMatchObject({
    uri: ann.uri,
    current_organization: ann.organization,
    resource_type: 'User',
  });
});

test('refuses a code redeemed with the wrong code_verifier, or none', async () => {
  const { verifier, challenge } = pkcePair();
  const code = await codeFor(ann, challenge);
  const wrong = await exchange({
    grant_type: 'authorization_code',
    code,
    redirect_uri: redirectUri,
    code_verifier: pkcePair().verifier,
  });
  expect(wrong.status).toBe(400);
  expect(wrong.body.error).toBe('invalid_grant');
  const missing = await exchange({ grant_type: 'authorization_code', code, redirect_uri: redirectUri });
  expect(missing.status).toBe(400);
  expect(missing.body.error).toBe('invalid_grant');
  const right = await exchange({
    grant_type: 'authorization_code',
    code,
    redirect_uri: redirectUri,
    code_verifier: verifier,
  });
  expect(right.status).toBe(200);
});

test('a code is single use and bound to its redirect_uri', async () => {
  const { verifier, challenge } = pkcePair();
  const code = await codeFor(ann, challenge);
  const otherRedirect = await exchange({
    grant_type: 'authorization_code',
    code,
    redirect_uri: 'http://evil.test/cb',
    code_verifier: verifier,
  });
  expect(otherRedirect.body.error).toBe('invalid_grant');
  const form = { grant_type: 'authorization_code', code, redirect_uri: redirectUri, code_verifier: verifier };
  expect((await exchange(form)).status).toBe(200);
  const again = await exchange(form);
  expect(again.status).toBe(400);
  expect(again.body.error).toBe('invalid_grant');
});

test('a code expires after 10 minutes', async () => {
  const { verifier, challenge } = pkcePair();
  const code = await codeFor(ann, challenge);
  await harness.control('POST', '/_sim/faults', { clock_offset_ms: 10 * 60_000 + 1_000 });
  const late = await exchange({
    grant_type: 'authorization_code',
    code,
    redirect_uri: redirectUri,
    code_verifier: verifier,
  });
  expect(late.status).toBe(400);
  expect(late.body.error).toBe('invalid_grant');
});

test('refuses a client that does not authenticate, or with the wrong secret', async () => {
  const { verifier, challenge } = pkcePair();
  const code = await codeFor(ann, challenge);
  const form = { grant_type: 'authorization_code', code, redirect_uri: redirectUri, code_verifier: verifier };
  const wrong = await exchange(form, { id: devClient.id, secret: 'not-the-secret' });
  expect(wrong.status).toBe(401);
  expect(wrong.body.error).toBe('invalid_client');
  expect(wrong.text).not.toContain('not-the-secret');
  const none = await harness.call<Record<string, unknown>>('POST', '/oauth/token', { form });
  expect(none.status).toBe(401);
  // Form credentials are accepted too, as Calendly documents for web clients.
  const inForm = await harness.call('POST', '/oauth/token', {
    form: { ...form, client_id: devClient.id, client_secret: devClient.secret },
  });
  expect(inForm.status).toBe(200);
});

test('rotates refresh tokens single-use: reusing the old one fails with 400 invalid_grant', async () => {
  const first = await connectWithOAuth(harness, ann);
  const rotated = await exchange({ grant_type: 'refresh_token', refresh_token: first.refresh_token });
  expect(rotated.status).toBe(200);
  expect(rotated.body.refresh_token).not.toBe(first.refresh_token);
  expect(rotated.body.access_token).not.toBe(first.access_token);
  expect(rotated.body.owner).toBe(ann.uri);

  const reuse = await exchange({ grant_type: 'refresh_token', refresh_token: first.refresh_token });
  expect(reuse.status).toBe(400);
  expect(reuse.body).toMatchObject({ error: 'invalid_grant' });

  const next = await exchange({ grant_type: 'refresh_token', refresh_token: rotated.body.refresh_token as string });
  expect(next.status).toBe(200);
  const me = await harness.call('GET', '/users/me', { token: next.body.access_token as string });
  expect(me.status).toBe(200);
});

test("counts each user's token requests, refused ones included, so tests can count refreshes", async () => {
  const first = await connectWithOAuth(harness, ann);
  await exchange({ grant_type: 'refresh_token', refresh_token: first.refresh_token });
  await exchange({ grant_type: 'refresh_token', refresh_token: first.refresh_token });
  const counts = await harness.control('GET', `/_sim/token_requests?user=${encodeURIComponent(ann.uri)}`);
  expect(counts).toEqual({ user: ann.uri, authorization_code: 1, refresh_token: 2 });
  const unknown = await harness.call('GET', '/_sim/token_requests?user=nobody');
  expect(unknown.status).toBe(400);
});

test('access tokens expire after accessTokenTtlSeconds', async () => {
  await harness.control('POST', '/_sim/settings', { accessTokenTtlSeconds: 60 });
  const tokens = await connectWithOAuth(harness, ann);
  expect((await harness.call('GET', '/users/me', { token: tokens.access_token })).status).toBe(200);
  await harness.control('POST', '/_sim/faults', { clock_offset_ms: 61_000 });
  const expired = await harness.call('GET', '/users/me', { token: tokens.access_token });
  expect(expired.status).toBe(401);
  expect(expired.body).toEqual({ title: 'Unauthenticated', message: 'The access token expired' });
  // The refresh token outlives it.
  expect((await exchange({ grant_type: 'refresh_token', refresh_token: tokens.refresh_token })).status).toBe(200);
});

test('revoking a refresh token ends the grant, its access token included; introspect agrees', async () => {
  const tokens = await connectWithOAuth(harness, ann);
  const active = await harness.call('POST', '/oauth/introspect', {
    form: { client_id: devClient.id, client_secret: devClient.secret, token: tokens.access_token },
  });
  expect(active.body).toMatchObject({
    active: true,
    client_id: devClient.id,
    owner: ann.uri,
    organization: ann.organization,
  });
  expect(typeof active.body.exp).toBe('number');

  const revoked = await harness.call('POST', '/oauth/revoke', {
    form: { client_id: devClient.id, client_secret: devClient.secret, token: tokens.refresh_token },
  });
  expect(revoked.status).toBe(200);
  const me = await harness.call('GET', '/users/me', { token: tokens.access_token });
  expect(me.status).toBe(401);
  expect(me.body.message).toBe('The access token is revoked');
  expect((await exchange({ grant_type: 'refresh_token', refresh_token: tokens.refresh_token })).body.error).toBe(
    'invalid_grant',
  );
  const inactive = await harness.call('POST', '/oauth/introspect', {
    form: { client_id: devClient.id, client_secret: devClient.secret, token: tokens.access_token },
  });
  expect(inactive.body).toEqual({ active: false });
  const badClient = await harness.call('POST', '/oauth/revoke', {
    form: { client_id: devClient.id, client_secret: 'wrong', token: tokens.access_token },
  });
  expect(badClient.status).toBe(401);
});

test("a user removing the application revokes every grant of theirs, and nobody else's", async () => {
  const first = await connectWithOAuth(harness, ann);
  const second = await connectWithOAuth(harness, ann);
  const bob = await harness.createUser({ name: 'Bob', email: 'bob@example.test' });
  const bobs = await connectWithOAuth(harness, bob);

  const answer = await harness.control<{ revoked_grants: number }>('POST', `/_sim/users/${ann.uuid}/revoke_access`);
  expect(answer).toEqual({ revoked_grants: 2 });
  for (const tokens of [first, second]) {
    expect((await harness.call('GET', '/users/me', { token: tokens.access_token })).status).toBe(401);
    expect((await exchange({ grant_type: 'refresh_token', refresh_token: tokens.refresh_token })).body.error).toBe(
      'invalid_grant',
    );
  }
  expect((await harness.call('GET', '/users/me', { token: bobs.access_token })).status).toBe(200);
  expect((await exchange({ grant_type: 'refresh_token', refresh_token: bobs.refresh_token })).status).toBe(200);
  // Her personal access token is not an application grant.
  expect((await harness.call('GET', '/users/me', { token: ann.personal_access_token })).status).toBe(200);
  expect((await harness.call('POST', '/_sim/users/nobody/revoke_access')).status).toBe(404);
});

test('allows 8 token requests per user per minute; the 9th is 429 and spends nothing', async () => {
  let tokens = await connectWithOAuth(harness, ann);
  for (let i = 0; i < 7; i += 1) {
    const answer = await exchange({ grant_type: 'refresh_token', refresh_token: tokens.refresh_token });
    expect(answer.status).toBe(200);
    tokens = answer.body as typeof tokens;
  }
  const limited = await exchange({ grant_type: 'refresh_token', refresh_token: tokens.refresh_token });
  expect(limited.status).toBe(429);
  expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
  expect(limited.text).not.toContain(tokens.refresh_token);
  // Another user has a budget of their own.
  const bob = await harness.createUser({ name: 'Bob', email: 'bob@example.test' });
  await connectWithOAuth(harness, bob);

  await harness.control('POST', '/_sim/faults', { clock_offset_ms: 61_000 });
  const later = await exchange({ grant_type: 'refresh_token', refresh_token: tokens.refresh_token });
  expect(later.status).toBe(200);
});

test('authorize without sim_user shows an accessible consent page whose Approve form completes the flow', async () => {
  const bob = await harness.createUser({ name: 'Bob <b>Bold</b>', email: 'bob@example.test' });
  const { challenge } = pkcePair();
  const start = await harness.call(
    'GET',
    `/oauth/authorize?${authorizeQuery({ code_challenge: challenge, code_challenge_method: 'S256' })}`,
  );
  expect(start.status).toBe(302);
  const consentUrl = new URL(start.headers.get('location')!, harness.sim.url);
  expect(consentUrl.pathname).toBe('/_sim/oauth/consent');
  const page = await harness.call('GET', `${consentUrl.pathname}${consentUrl.search}`);
  expect(page.status).toBe(200);
  expect(page.headers.get('content-type')).toContain('text/html');
  expect(page.text).toContain('<html lang="en">');
  expect(page.text).toContain('<button type="submit">Approve as Ann Lee</button>');
  expect(page.text).toContain('Approve as Bob &lt;b&gt;Bold&lt;/b&gt;');
  expect(page.text).not.toContain('<b>Bold</b>');

  // Submitting Bob's form is a GET of the form's fields.
  const form = page.text
    .split('<li>')
    .map((item) => item.split('</li>')[0]!)
    .find((item) => item.includes(bob.uuid))!;
  const fields = new URLSearchParams();
  for (const match of form.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)) {
    fields.set(match[1]!, match[2]!.replace(/&amp;/g, '&'));
  }
  const approved = await harness.call('GET', `/oauth/authorize?${fields.toString()}`);
  expect(approved.status).toBe(302);
  const back = new URL(approved.headers.get('location')!);
  expect(back.searchParams.get('error_description')).toBeNull();
  expect(back.searchParams.get('code')).toBeTruthy();
  expect(back.searchParams.get('state')).toBe('xyz');

  const denied = await harness.call('GET', `/oauth/authorize?${authorizeQuery({ sim_decision: 'deny' })}`);
  expect(new URL(denied.headers.get('location')!).searchParams.get('error')).toBe('access_denied');
});

test('authorize refuses an unknown client without redirecting, and reports bad requests to the redirect_uri', async () => {
  const unknown = await harness.call(
    'GET',
    `/oauth/authorize?${authorizeQuery({ client_id: 'someone-else', sim_user: ann.uuid })}`,
  );
  expect(unknown.status).toBe(400);
  expect(unknown.headers.get('location')).toBeNull();
  const plain = await harness.call(
    'GET',
    `/oauth/authorize?${authorizeQuery({ code_challenge: pkcePair().challenge, code_challenge_method: 'plain', sim_user: ann.uuid })}`,
  );
  const location = new URL(plain.headers.get('location')!);
  expect(location.searchParams.get('error')).toBe('invalid_request');
  expect(location.searchParams.get('state')).toBe('xyz');
  expect(location.searchParams.get('code')).toBeNull();
});

test('a token without webhooks:write cannot create subscriptions', async () => {
  const tokens = await connectWithOAuth(harness, ann, 'users:read webhooks:read');
  const answer = await harness.call('POST', '/webhook_subscriptions', {
    token: tokens.access_token,
    body: {
      url: 'http://127.0.0.1:1/hook',
      events: ['invitee.created'],
      organization: ann.organization,
      scope: 'user',
      user: ann.uri,
    },
  });
  expect(answer.status).toBe(403);
  expect(answer.body.title).toBe('Permission Denied');
});

test('personal access tokens authenticate as their user; unknown tokens are 401', async () => {
  const me = await harness.call<{ resource: { uri: string } }>('GET', '/users/me', {
    token: ann.personal_access_token,
  });
  expect(me.body.resource.uri).toBe(ann.uri);
  expect(ann.personal_access_token.length).toBeGreaterThan(200);
  const bad = await harness.call('GET', '/users/me', { token: 'nope' });
  expect(bad.status).toBe(401);
  expect(bad.body).toEqual({ title: 'Unauthenticated', message: 'The access token is invalid' });
});
