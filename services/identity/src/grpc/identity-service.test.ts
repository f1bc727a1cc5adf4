import { CalendlyError } from '@calsync/calendly-client';
import { startSimulator, type Simulator } from '@calsync/calendly-sim';
import { identityV1 } from '@calsync/proto';
import { channelCredentials, grpcIdentities, GrpcStatus, type PromiseClient } from '@calsync/service-kit';
import {
  callWithoutCertificate,
  captureLogger,
  clientAs,
  reflectedServices,
  testGrpcSecurity,
  createTestDatabase,
  grpcHealth,
  type TestDatabase,
} from '@calsync/service-kit/testing';
import type { IdentityApp } from '../main';
import { approveAuthorize, createSimUser, simControl, type SimUser } from '@calsync/calendly-sim/testing';
import {
  accessTokenExpired,
  connectWithOAuth as connectUserWithOAuth,
  expectNoPlaintextSecrets,
  failureOf,
  startTestIdentity,
  isActiveAtCalendly,
  metricSum,
  newSealingKey,
  openStoredSecrets,
  redirectUri,
  revokeAtCalendly,
  sealerFor,
  storedRefreshToken,
  whoIs,
  withDatabase,
} from '../../test/harness';
import { IdentityError } from '../errors';
import { toGrpcError } from './identity-service';

const { ConnectionKind, ConnectionState } = identityV1;
type IdentityClient = PromiseClient<typeof identityV1.IdentityServiceService>;

const keys = { k1: newSealingKey() };
const sealer = sealerFor(keys, 'k1');
const captured = captureLogger('identity', 'debug');
const secrets = new Set<string>();
let database: TestDatabase;
let sim: Simulator;
let app: IdentityApp;
let identity: IdentityClient;

beforeAll(async () => {
  database = await createTestDatabase('identity_grpc');
  sim = await startSimulator({ port: 0 });
  const booted = await startTestIdentity({
    databaseUrl: database.url,
    sim,
    keys,
    activeKeyId: 'k1',
    log: captured.log,
  });
  app = booted.app;
  identity = booted.client;
});

// Every secret identity holds at any moment of the run, to prove none of them leaks anywhere.
afterEach(async () => {
  for (const opened of (await openStoredSecrets(database.url, sealer)).values())
    for (const secret of Object.values(opened)) secrets.add(secret);
});

afterAll(async () => {
  identity?.close();
  await app?.stop();
  await sim?.stop();
  await database?.drop();
});

async function newSimUser(overrides: Record<string, string> = {}): Promise<SimUser> {
  const user = await createSimUser(sim, overrides);
  secrets.add(user.personal_access_token);
  return user;
}

/** The whole OAuth connect as the gateway and the browser drive it; its state and code are secrets. */
const connectWithOAuth = (userId: string, simUser: SimUser) =>
  connectUserWithOAuth(identity, userId, simUser, (secret) => secrets.add(secret));

async function accessToken(userId: string, minValiditySeconds = 0): Promise<string> {
  const answer = await identity.getAccessToken({ userId, minValiditySeconds });
  secrets.add(answer.accessToken);
  return answer.accessToken;
}

/** Runs `work` with the simulator issuing access tokens that live one second. */
async function withShortLivedTokens<T>(work: () => Promise<T>): Promise<T> {
  await simControl(sim, 'POST', '/_sim/settings', { accessTokenTtlSeconds: 1 });
  try {
    return await work();
  } finally {
    await simControl(sim, 'POST', '/_sim/settings', { accessTokenTtlSeconds: 7200 });
  }
}

describe('health', () => {
  it('serves once Postgres answers', async () => {
    const address = `127.0.0.1:${app.ports.grpc}`;
    expect(await grpcHealth(address, grpcIdentities.identity)).toBe('SERVING');
    expect(await grpcHealth(address, grpcIdentities.identity, 'calsync.identity.v1.IdentityService')).toBe('SERVING');
    // The kubelet probes over HTTP on the metrics port: its gRPC probes cannot present a certificate.
    const probe = (path: string) =>
      fetch(`http://127.0.0.1:${app.ports.metrics}${path}`).then((answer) => answer.status);
    expect([await probe('/healthz'), await probe('/readyz')]).toEqual([200, 200]);
  });
});

describe('who may call', () => {
  it('hands access tokens only to subscription and meetings: the gateway is refused, a stranger unauthenticated', async () => {
    const user = await newSimUser();
    await identity.connectWithPersonalToken({ userId: 'who-ann', token: user.personal_access_token });
    const address = `127.0.0.1:${app.ports.grpc}`;
    const request = { userId: 'who-ann', minValiditySeconds: 0 };
    for (const allowed of [grpcIdentities.subscription, grpcIdentities.meetings]) {
      const client = await clientAs(allowed, identityV1.IdentityServiceService, address);
      await expect(client.getAccessToken(request)).resolves.toMatchObject({ accessToken: user.personal_access_token });
      client.close();
    }
    const gateway = await clientAs(grpcIdentities.gateway, identityV1.IdentityServiceService, address);
    const refused = await gateway.getAccessToken(request).catch((error: unknown) => error);
    gateway.close();
    expect(refused).toMatchObject({ code: GrpcStatus.PERMISSION_DENIED });
    expect(JSON.stringify(refused)).not.toContain(user.personal_access_token);
    const stranger = await callWithoutCertificate(
      identityV1.IdentityServiceService,
      address,
      'getAccessToken',
      request,
    );
    expect(stranger.code).toBe(GrpcStatus.UNAUTHENTICATED);
  });

  it('lists only its own services and health in reflection', async () => {
    const credentials = channelCredentials(await testGrpcSecurity(), grpcIdentities.identity);
    expect(await reflectedServices(`127.0.0.1:${app.ports.grpc}`, credentials)).toEqual([
      'calsync.identity.v1.IdentityAdminService',
      'calsync.identity.v1.IdentityService',
      'grpc.health.v1.Health',
    ]);
  });
});

describe('OAuth connect', () => {
  it('connects end to end: PKCE authorize URL, code exchange, owner and organization recorded, a working token', async () => {
    const simUser = await newSimUser();
    const begun = await identity.beginConnect({ userId: 'user-oauth', redirectUri });
    const authorize = new URL(begun.authorizeUrl);
    expect(`${authorize.origin}${authorize.pathname}`).toBe(`${sim.url}/oauth/authorize`);
    expect(authorize.searchParams.get('client_id')).toBe('calsync-dev-client');
    expect(authorize.searchParams.get('response_type')).toBe('code');
    expect(authorize.searchParams.get('redirect_uri')).toBe(redirectUri);
    expect(authorize.searchParams.get('state')).toBe(begun.state);
    expect(authorize.searchParams.get('code_challenge_method')).toBe('S256');
    expect(authorize.searchParams.get('code_challenge')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(authorize.searchParams.has('code_verifier')).toBe(false);
    expect(begun.expiresAt!.getTime() - Date.now()).toBeGreaterThan(590_000);
    expect(begun.expiresAt!.getTime() - Date.now()).toBeLessThanOrEqual(600_000);
    secrets.add(begun.state);

    const { code, state } = await approveAuthorize(begun.authorizeUrl, simUser);
    secrets.add(code);
    const completed = await identity.completeConnect({ state, code });
    expect(completed.replacedPrevious).toBe(false);
    expect(completed.connection).toMatchObject({
      userId: 'user-oauth',
      kind: ConnectionKind.CONNECTION_KIND_OAUTH,
      state: ConnectionState.CONNECTION_STATE_ACTIVE,
      calendlyUserUri: simUser.uri,
      calendlyOrganizationUri: simUser.organization,
      scope: 'users:read webhooks:read webhooks:write scheduled_events:read',
    });
    const expiresIn = completed.connection!.accessTokenExpiresAt!.getTime() - Date.now();
    expect(expiresIn).toBeGreaterThan(7_190_000);
    expect(expiresIn).toBeLessThanOrEqual(7_200_000);

    const token = await identity.getAccessToken({ userId: 'user-oauth', minValiditySeconds: 0 });
    secrets.add(token.accessToken);
    expect(token.kind).toBe(ConnectionKind.CONNECTION_KIND_OAUTH);
    expect(token.calendlyUserUri).toBe(simUser.uri);
    expect(token.expiresAt).toEqual(completed.connection!.accessTokenExpiresAt);
    expect(await whoIs(sim, token.accessToken)).toBe(simUser.uri);

    const { connection } = await identity.getConnection({ userId: 'user-oauth' });
    expect(connection).toEqual(completed.connection);
  });

  it('uses a connect state once: a second CompleteConnect with it is refused', async () => {
    const simUser = await newSimUser();
    const begun = await identity.beginConnect({ userId: 'user-state-once', redirectUri });
    const { code, state } = await approveAuthorize(begun.authorizeUrl, simUser);
    secrets.add(code).add(state);
    await identity.completeConnect({ state, code });
    const again = await failureOf(identity.completeConnect({ state, code }));
    expect(again).toMatchObject({ code: GrpcStatus.FAILED_PRECONDITION, reason: 'OAUTH_STATE_INVALID' });
    expect(again.details).toContain('start connecting Calendly again');
  });

  it('refuses an expired connect state and an unknown one, changing nothing', async () => {
    const simUser = await newSimUser();
    const begun = await identity.beginConnect({ userId: 'user-state-expired', redirectUri });
    const { code, state } = await approveAuthorize(begun.authorizeUrl, simUser);
    secrets.add(code).add(state);
    await withDatabase(database.url, (client) =>
      client.query("UPDATE identity.oauth_states SET expires_at = now() - interval '1 second'"),
    );
    expect(await failureOf(identity.completeConnect({ state, code }))).toMatchObject({
      code: GrpcStatus.FAILED_PRECONDITION,
      reason: 'OAUTH_STATE_EXPIRED',
    });
    expect(await failureOf(identity.completeConnect({ state: 'made-up-state', code }))).toMatchObject({
      code: GrpcStatus.FAILED_PRECONDITION,
      reason: 'OAUTH_STATE_INVALID',
    });
    expect(await failureOf(identity.getConnection({ userId: 'user-state-expired' }))).toMatchObject({
      code: GrpcStatus.NOT_FOUND,
    });
  });

  it('refuses a code Calendly does not accept, with a clear message', async () => {
    const begun = await identity.beginConnect({ userId: 'user-bad-code', redirectUri });
    secrets.add(begun.state);
    const refused = await failureOf(identity.completeConnect({ state: begun.state, code: 'not-a-code-at-all' }));
    expect(refused).toMatchObject({ code: GrpcStatus.FAILED_PRECONDITION, reason: 'OAUTH_CODE_REFUSED' });
    expect(refused.details).toContain('Calendly refused the authorization code');
  });

  it('refuses bad requests with INVALID_ARGUMENT naming the field', async () => {
    expect(await failureOf(identity.beginConnect({ userId: '', redirectUri }))).toMatchObject({
      code: GrpcStatus.INVALID_ARGUMENT,
      details: 'user_id is required',
    });
    expect(await failureOf(identity.beginConnect({ userId: 'u', redirectUri: 'not a url' }))).toMatchObject({
      code: GrpcStatus.INVALID_ARGUMENT,
      details: 'redirect_uri must be an absolute URL',
    });
    expect(await failureOf(identity.completeConnect({ state: '', code: 'x' }))).toMatchObject({
      code: GrpcStatus.INVALID_ARGUMENT,
      details: 'state is required',
    });
    expect(await failureOf(identity.getAccessToken({ userId: 'u', minValiditySeconds: -1 }))).toMatchObject({
      code: GrpcStatus.INVALID_ARGUMENT,
    });
    expect(await failureOf(identity.getAccessToken({ userId: 'u', minValiditySeconds: 7201 }))).toMatchObject({
      code: GrpcStatus.INVALID_ARGUMENT,
    });
  });
});

describe('personal access tokens', () => {
  it('connects with a personal access token checked at Calendly, and hands it back unchanged', async () => {
    const simUser = await newSimUser();
    const { connection, replacedPrevious } = await identity.connectWithPersonalToken({
      userId: 'user-pat',
      token: simUser.personal_access_token,
    });
    expect(replacedPrevious).toBe(false);
    expect(connection).toMatchObject({
      kind: ConnectionKind.CONNECTION_KIND_PERSONAL_TOKEN,
      state: ConnectionState.CONNECTION_STATE_ACTIVE,
      calendlyUserUri: simUser.uri,
      calendlyOrganizationUri: simUser.organization,
    });
    expect(connection!.accessTokenExpiresAt).toBeUndefined();
    const token = await identity.getAccessToken({ userId: 'user-pat', minValiditySeconds: 0 });
    expect(token.accessToken).toBe(simUser.personal_access_token);
    expect(token.expiresAt).toBeUndefined();
    expect(token.kind).toBe(ConnectionKind.CONNECTION_KIND_PERSONAL_TOKEN);
  });

  it('refuses a token Calendly does not know, and stores nothing', async () => {
    const badToken = `bad-personal-token-${Date.now()}-abcdefgh`;
    secrets.add(badToken);
    const refused = await failureOf(identity.connectWithPersonalToken({ userId: 'user-bad-pat', token: badToken }));
    expect(refused).toMatchObject({ code: GrpcStatus.UNAUTHENTICATED, reason: 'PERSONAL_TOKEN_REFUSED' });
    expect(refused.details).toBe('Calendly refused this personal access token (invalid, expired or revoked)');
    expect(await failureOf(identity.getConnection({ userId: 'user-bad-pat' }))).toMatchObject({
      code: GrpcStatus.NOT_FOUND,
    });
    expect(
      await failureOf(identity.connectWithPersonalToken({ userId: 'user-bad-pat', token: 'two words' })),
    ).toMatchObject({ code: GrpcStatus.INVALID_ARGUMENT });
  });
});

describe('one connection per user, one user per Calendly account', () => {
  it('refuses the same Calendly account for a second platform user, by either path', async () => {
    const simUser = await newSimUser();
    await identity.connectWithPersonalToken({ userId: 'owner-a', token: simUser.personal_access_token });
    const byPat = await failureOf(
      identity.connectWithPersonalToken({ userId: 'intruder-b', token: simUser.personal_access_token }),
    );
    expect(byPat).toMatchObject({ code: GrpcStatus.ALREADY_EXISTS, reason: 'CALENDLY_ACCOUNT_TAKEN' });
    expect(byPat.details).toContain('already connected to another user');
    expect(byPat.details).not.toContain('owner-a');
    const revokedBefore = await metricSum([app.ports.metrics], 'calendly_requests_total', { operation: 'revokeToken' });
    const byOAuth = await failureOf(connectWithOAuth('intruder-c', simUser));
    expect(byOAuth).toMatchObject({ code: GrpcStatus.ALREADY_EXISTS, reason: 'CALENDLY_ACCOUNT_TAKEN' });
    // The refused grant is revoked at once (refresh and access token) rather than left valid at Calendly.
    expect(
      (await metricSum([app.ports.metrics], 'calendly_requests_total', { operation: 'revokeToken', status: '200' })) -
        revokedBefore,
    ).toBe(2);
    for (const userId of ['intruder-b', 'intruder-c'])
      expect(await failureOf(identity.getConnection({ userId }))).toMatchObject({ code: GrpcStatus.NOT_FOUND });
    expect((await identity.getConnection({ userId: 'owner-a' })).connection!.calendlyUserUri).toBe(simUser.uri);
  });

  it('lets exactly one of two users finishing a connect to the same account at once have it', async () => {
    const simUser = await newSimUser();
    const grants = await Promise.all(
      ['racer-a', 'racer-b'].map(async (userId) => {
        const begun = await identity.beginConnect({ userId, redirectUri });
        const { code, state } = await approveAuthorize(begun.authorizeUrl, simUser);
        secrets.add(code).add(state);
        return { state, code };
      }),
    );
    const outcomes = await Promise.allSettled(grants.map((grant) => identity.completeConnect(grant)));
    expect(outcomes.filter((outcome) => outcome.status === 'fulfilled')).toHaveLength(1);
    const [refused] = outcomes.filter((outcome) => outcome.status === 'rejected');
    expect((refused as PromiseRejectedResult).reason).toMatchObject({ code: GrpcStatus.ALREADY_EXISTS });
  });

  it('replaces a user’s connection on reconnect and revokes the old tokens at Calendly', async () => {
    const simUser = await newSimUser();
    await connectWithOAuth('user-reconnect', simUser);
    const oldAccess = await accessToken('user-reconnect');
    const oldRefresh = await storedRefreshToken(database.url, sealer, 'user-reconnect');
    secrets.add(oldRefresh);

    const again = await connectWithOAuth('user-reconnect', simUser);
    expect(again.replacedPrevious).toBe(true);
    const newAccess = await accessToken('user-reconnect');
    expect(newAccess).not.toBe(oldAccess);
    expect(await whoIs(sim, oldAccess)).toBe(401);
    expect(await isActiveAtCalendly(sim, oldRefresh)).toBe(false);
    expect(await whoIs(sim, newAccess)).toBe(simUser.uri);

    // A personal token replaces the OAuth connection the same way.
    const replaced = await identity.connectWithPersonalToken({
      userId: 'user-reconnect',
      token: simUser.personal_access_token,
    });
    expect(replaced.replacedPrevious).toBe(true);
    expect(replaced.connection!.kind).toBe(ConnectionKind.CONNECTION_KIND_PERSONAL_TOKEN);
    expect(await whoIs(sim, newAccess)).toBe(401);
  });
});

describe('refresh', () => {
  it('refreshes an expiring token, persisting the rotated refresh token', async () => {
    const simUser = await newSimUser();
    await withShortLivedTokens(() => connectWithOAuth('user-refresh', simUser));
    const first = (await openStoredSecrets(database.url, sealer)).get('user-refresh')!;
    const firstAccess = first.access_token!;
    const firstRefresh = first.refresh_token!;
    await accessTokenExpired(database.url, 'user-refresh');

    const refreshed = await identity.getAccessToken({ userId: 'user-refresh', minValiditySeconds: 0 });
    secrets.add(refreshed.accessToken);
    expect(refreshed.accessToken).not.toBe(firstAccess);
    expect(refreshed.expiresAt!.getTime() - Date.now()).toBeGreaterThan(7_190_000);
    expect(await whoIs(sim, refreshed.accessToken)).toBe(simUser.uri);
    const secondRefresh = await storedRefreshToken(database.url, sealer, 'user-refresh');
    secrets.add(secondRefresh);
    expect(secondRefresh).not.toBe(firstRefresh);
    expect(await isActiveAtCalendly(sim, firstRefresh)).toBe(false);
    expect(await isActiveAtCalendly(sim, secondRefresh)).toBe(true);
    // Fresh now: a second call hands out the same token without asking Calendly.
    expect(await accessToken('user-refresh')).toBe(refreshed.accessToken);
  });

  it('turns the connection reauth_required when Calendly refuses the revoked refresh token, and says so clearly', async () => {
    const simUser = await newSimUser();
    await withShortLivedTokens(() => connectWithOAuth('user-revoked', simUser));
    const refreshToken = await storedRefreshToken(database.url, sealer, 'user-revoked');
    secrets.add(refreshToken);
    await revokeAtCalendly(sim, refreshToken);
    await accessTokenExpired(database.url, 'user-revoked');

    const refused = await failureOf(identity.getAccessToken({ userId: 'user-revoked', minValiditySeconds: 0 }));
    expect(refused).toMatchObject({ code: GrpcStatus.FAILED_PRECONDITION, reason: 'REAUTH_REQUIRED' });
    expect(refused.details).toContain('the user must connect Calendly again');
    const { connection } = await identity.getConnection({ userId: 'user-revoked' });
    expect(connection!.state).toBe(ConnectionState.CONNECTION_STATE_REAUTH_REQUIRED);
    // It does not loop: the next call answers at once, without another token request.
    expect(await failureOf(identity.getAccessToken({ userId: 'user-revoked', minValiditySeconds: 0 }))).toMatchObject({
      reason: 'REAUTH_REQUIRED',
    });
    const metrics = await (await fetch(`http://127.0.0.1:${app.ports.metrics}/metrics`)).text();
    expect(metrics).toMatch(/identity_token_refresh_failures_total\{reason="invalid_grant",service="identity"\} 1\n/);
    expect(metrics).toMatch(/identity_connections\{kind="oauth",state="reauth_required",service="identity"\} 1\n/);

    // Connecting again brings it back.
    const back = await connectWithOAuth('user-revoked', simUser);
    expect(back.connection!.state).toBe(ConnectionState.CONNECTION_STATE_ACTIVE);
    expect(await whoIs(sim, await accessToken('user-revoked'))).toBe(simUser.uri);
  });
});

describe('disconnect', () => {
  it('revokes the tokens at Calendly, deletes them, and is idempotent', async () => {
    const simUser = await newSimUser();
    await connectWithOAuth('user-leaving', simUser);
    const access = await accessToken('user-leaving');
    const refresh = await storedRefreshToken(database.url, sealer, 'user-leaving');
    secrets.add(refresh);

    expect(await identity.disconnect({ userId: 'user-leaving' })).toEqual({ wasConnected: true, revoked: true });
    expect(await whoIs(sim, access)).toBe(401);
    expect(await isActiveAtCalendly(sim, refresh)).toBe(false);
    expect(await failureOf(identity.getConnection({ userId: 'user-leaving' }))).toMatchObject({
      code: GrpcStatus.NOT_FOUND,
    });
    expect(await failureOf(identity.getAccessToken({ userId: 'user-leaving', minValiditySeconds: 0 }))).toMatchObject({
      code: GrpcStatus.NOT_FOUND,
    });
    expect(await identity.disconnect({ userId: 'user-leaving' })).toEqual({ wasConnected: false, revoked: false });
  });

  it('deletes a personal-token connection (Calendly cannot revoke those: revoked is false)', async () => {
    const simUser = await newSimUser();
    await identity.connectWithPersonalToken({ userId: 'user-pat-leaving', token: simUser.personal_access_token });
    expect(await identity.disconnect({ userId: 'user-pat-leaving' })).toEqual({ wasConnected: true, revoked: false });
    // The account is free again for whoever connects it next.
    await identity.connectWithPersonalToken({ userId: 'user-pat-next', token: simUser.personal_access_token });
  });
});

describe('secrets at rest and in logs', () => {
  it('finds no plaintext token, code, state or verifier in any table or any log line of the run', async () => {
    // A pending connect too, so its sealed verifier is part of the scan.
    const pending = await identity.beginConnect({ userId: 'user-pending', redirectUri });
    secrets.add(pending.state);
    for (const opened of (await openStoredSecrets(database.url, sealer)).values())
      for (const secret of Object.values(opened)) secrets.add(secret);
    const scanned = await expectNoPlaintextSecrets({ databaseUrl: database.url, lines: captured.lines, secrets });
    expect(scanned.rows).toBeGreaterThan(5);
    expect(scanned.lines).toBeGreaterThan(50);
    expect(scanned.secrets).toBeGreaterThan(20);
  });
});

describe('toGrpcError', () => {
  it.each([
    [{ failure: 'timeout' as const }, GrpcStatus.UNAVAILABLE],
    [{ failure: 'network' as const }, GrpcStatus.UNAVAILABLE],
    [{ failure: 'invalid_response' as const, status: 200 }, GrpcStatus.UNAVAILABLE],
    [{ status: 400 }, GrpcStatus.INVALID_ARGUMENT],
    [{ status: 401 }, GrpcStatus.UNAUTHENTICATED],
    [{ status: 403 }, GrpcStatus.PERMISSION_DENIED],
    [{ status: 404 }, GrpcStatus.NOT_FOUND],
    [{ status: 409 }, GrpcStatus.ALREADY_EXISTS],
    [{ status: 429 }, GrpcStatus.RESOURCE_EXHAUSTED],
    [{ status: 503 }, GrpcStatus.UNAVAILABLE],
  ])('answers a Calendly failure %j with status %i and its safe message, no reason', (init, code) => {
    const error = new CalendlyError({ operation: 'getCurrentUser', failure: 'http', ...init });
    expect(toGrpcError(error)).toMatchObject({ code, message: error.safeMessage, reason: undefined });
  });

  it('sends the reason only for failures the contract names', () => {
    expect(toGrpcError(new IdentityError('NOT_CONNECTED', 'no connection'))).toMatchObject({
      code: GrpcStatus.NOT_FOUND,
      message: 'no connection',
      reason: 'NOT_CONNECTED',
    });
    expect(toGrpcError(new IdentityError('INVALID_INPUT', 'user_id is required'))).toMatchObject({
      code: GrpcStatus.INVALID_ARGUMENT,
      reason: undefined,
    });
  });

  it('leaves errors it does not know to the kit (INTERNAL, message hidden)', () => {
    expect(toGrpcError(new Error('boom'))).toBeUndefined();
  });
});

describe('GetAccessTokens', () => {
  it('answers each user on their own: a token, a refreshed token, or the status GetAccessToken would have said', async () => {
    const pat = await newSimUser();
    await identity.connectWithPersonalToken({ userId: 'many-pat', token: pat.personal_access_token });
    const expiring = await newSimUser();
    await withShortLivedTokens(() => connectWithOAuth('many-expiring', expiring));
    await accessTokenExpired(database.url, 'many-expiring');
    const revoked = await newSimUser();
    await withShortLivedTokens(() => connectWithOAuth('many-revoked', revoked));
    const refreshToken = await storedRefreshToken(database.url, sealer, 'many-revoked');
    secrets.add(refreshToken);
    await revokeAtCalendly(sim, refreshToken);
    await accessTokenExpired(database.url, 'many-revoked');

    const { tokens } = await identity.getAccessTokens({
      userIds: ['many-pat', 'many-expiring', 'many-revoked', 'many-nobody', 'many-pat', 'bad\u0000id'],
      minValiditySeconds: 0,
    });
    for (const entry of tokens) if (entry.token) secrets.add(entry.token.accessToken);
    const byUser = new Map(tokens.map((entry) => [entry.userId, entry]));
    // Each distinct user once.
    expect(tokens).toHaveLength(5);
    expect(byUser.get('many-pat')).toMatchObject({
      token: {
        accessToken: pat.personal_access_token,
        kind: ConnectionKind.CONNECTION_KIND_PERSONAL_TOKEN,
        calendlyUserUri: pat.uri,
        calendlyOrganizationUri: pat.organization,
      },
      errorCode: 0,
    });
    const refreshed = byUser.get('many-expiring')!.token!;
    expect(refreshed.kind).toBe(ConnectionKind.CONNECTION_KIND_OAUTH);
    expect(await whoIs(sim, refreshed.accessToken)).toBe(expiring.uri);
    expect(refreshed.expiresAt!.getTime()).toBeGreaterThan(Date.now());
    // The same answers as GetAccessToken, one user at a time.
    expect(await accessToken('many-expiring')).toBe(refreshed.accessToken);
    const single = await failureOf(identity.getAccessToken({ userId: 'many-revoked', minValiditySeconds: 0 }));
    expect(byUser.get('many-revoked')).toMatchObject({
      token: undefined,
      errorCode: GrpcStatus.FAILED_PRECONDITION,
      errorReason: 'REAUTH_REQUIRED',
      errorMessage: single.details,
    });
    expect(byUser.get('many-nobody')).toMatchObject({
      token: undefined,
      errorCode: GrpcStatus.NOT_FOUND,
      errorReason: 'NOT_CONNECTED',
    });
    expect(byUser.get('bad\u0000id')).toMatchObject({
      token: undefined,
      errorCode: GrpcStatus.INVALID_ARGUMENT,
      errorMessage: 'user_id must not contain control characters',
    });
  });

  it('refuses a request without user ids, with too many, or with a bad min_validity_seconds, and changes nothing', async () => {
    expect(await failureOf(identity.getAccessTokens({ userIds: [], minValiditySeconds: 0 }))).toMatchObject({
      code: GrpcStatus.INVALID_ARGUMENT,
      details: 'user_ids is required',
    });
    const tooMany = Array.from({ length: 1001 }, (_, i) => `many-${i}`);
    expect(await failureOf(identity.getAccessTokens({ userIds: tooMany, minValiditySeconds: 0 }))).toMatchObject({
      code: GrpcStatus.INVALID_ARGUMENT,
      details: 'user_ids must hold at most 1000 user ids',
    });
    expect(
      await failureOf(identity.getAccessTokens({ userIds: ['many-pat'], minValiditySeconds: 7201 })),
    ).toMatchObject({ code: GrpcStatus.INVALID_ARGUMENT });
  });

  it('hands tokens only to subscription: meetings and the gateway are refused', async () => {
    const address = `127.0.0.1:${app.ports.grpc}`;
    for (const refused of [grpcIdentities.gateway, grpcIdentities.meetings]) {
      const client = await clientAs(refused, identityV1.IdentityServiceService, address);
      const failure = await client.getAccessTokens({ userIds: ['many-pat'], minValiditySeconds: 0 }).catch((e) => e);
      client.close();
      expect(failure).toMatchObject({ code: GrpcStatus.PERMISSION_DENIED });
    }
  });
});
