import { join } from 'node:path';
import { startSimulator, type Simulator } from '@calsync/calendly-sim';
import { createCalendlyClient } from '@calsync/calendly-client';
import { createMetricsRegistry, createPool, GrpcStatus, migrate, type Pool, type Registry } from '@calsync/service-kit';
import { captureLogger, createTestDatabase, type TestDatabase } from '@calsync/service-kit/testing';
import { createIdentityMetrics } from '../metrics';
import { approveAuthorize, createSimUser, simControl } from '@calsync/calendly-sim/testing';
import { clientId, clientSecret, newSealingKey, redirectUri, sealerFor, withDatabase } from '../../test/harness';
import { toGrpcError } from '../grpc/identity-service';
import { createAccessTokens, type AccessTokens } from './access-tokens';
import { createConnections, type Connections } from './connections';

// The domain with a clock the test moves: hours pass without waiting for them.
let offsetMs = 0;
const now = () => Date.now() + offsetMs;
const sealer = sealerFor({ k1: newSealingKey() }, 'k1');
const { log } = captureLogger('identity');
let database: TestDatabase;
let sim: Simulator;
let pool: Pool;
let registry: Registry;
let connections: Connections;
let accessTokens: AccessTokens;

beforeAll(async () => {
  database = await createTestDatabase('identity_tokens');
  sim = await startSimulator({ port: 0, settings: { tokenRequestsPerUserPerMinute: 100 } });
  await migrate({ url: database.url, schema: 'identity', dir: join(__dirname, '..', '..', 'migrations'), log });
  pool = createPool({ url: database.url, schema: 'identity', log });
  registry = createMetricsRegistry('identity');
  const calendly = createCalendlyClient({
    apiUrl: sim.url,
    authUrl: sim.url,
    clientId,
    clientSecret,
    maxRetries: 1,
    retryBaseDelayMs: 10,
    log,
    registry,
  });
  const metrics = createIdentityMetrics({ registry, pool, log });
  connections = createConnections({
    log,
    pool,
    sealer,
    calendly,
    now,
    settings: { authUrl: sim.url, clientId, scopes: '', stateTtlSeconds: 600, tokenRequestsPerMinute: 8 },
  });
  accessTokens = createAccessTokens({
    log,
    pool,
    sealer,
    calendly,
    metrics,
    now,
    settings: { defaultMinValiditySeconds: 300, tokenRequestsPerMinute: 8, refreshLockTimeoutMs: 5_000 },
  });
});

beforeEach(async () => {
  offsetMs = 0;
  await simControl(sim, 'DELETE', '/_sim/faults');
});

afterAll(async () => {
  await pool?.end();
  await sim?.stop();
  await database?.drop();
});

async function connect(userId: string): Promise<void> {
  const simUser = await createSimUser(sim);
  const begun = await connections.beginConnect(userId, redirectUri);
  const { code, state } = await approveAuthorize(begun.authorizeUrl, simUser);
  await connections.completeConnect(state, code);
}

async function counter(name: string, labels: Record<string, string> = {}): Promise<number> {
  const metric = (await registry.getMetricsAsJSON()).find((m) => m.name === name);
  return (metric?.values ?? [])
    .filter((v) => Object.entries(labels).every(([key, value]) => v.labels[key] === value))
    .reduce((sum, v) => sum + v.value, 0);
}

const storedRow = (userId: string) =>
  withDatabase(database.url, async (client) => {
    const { rows } = await client.query<{ state: string; refresh_token_sealed: string }>(
      'SELECT state, refresh_token_sealed FROM identity.connections WHERE user_id = $1',
      [userId],
    );
    return rows[0]!;
  });

/** What operators see of a user's refreshes (IdentityAdminService.ListConnections). */
const refreshRecord = (userId: string) =>
  withDatabase(database.url, async (client) => {
    const { rows } = await client.query<{
      last_refreshed_at: Date | null;
      last_refresh_error: string | null;
      last_refresh_error_at: Date | null;
    }>(
      'SELECT last_refreshed_at, last_refresh_error, last_refresh_error_at FROM identity.connections WHERE user_id = $1',
      [userId],
    );
    return rows[0]!;
  });

/** The failure as identity's callers see it, through the gRPC adapter's table. */
const refusal = async (call: Promise<unknown>) => {
  const error = await call.then(
    () => {
      throw new Error('expected the call to fail');
    },
    (e: unknown) => e,
  );
  const answer = toGrpcError(error);
  if (!answer) throw error;
  return { code: answer.code, reason: answer.reason, message: answer.message };
};

describe('access tokens', () => {
  it("keeps to Calendly's 8 token requests per user per minute: the 9th is refused before reaching Calendly", async () => {
    await connect('user-busy');
    const refreshesBefore = await counter('calendly_requests_total', { operation: 'refreshToken' });
    for (let i = 0; i < 7; i++) {
      offsetMs += 2 * 3600_000;
      await accessTokens.getAccessToken('user-busy');
    }
    offsetMs += 2 * 3600_000;
    const refused = await refusal(accessTokens.getAccessToken('user-busy'));
    expect(refused).toMatchObject({ code: GrpcStatus.RESOURCE_EXHAUSTED, reason: 'TOKEN_RATE_LIMITED' });
    expect(refused.message).toMatch(/retry in \d+ s/);
    expect((await counter('calendly_requests_total', { operation: 'refreshToken' })) - refreshesBefore).toBe(7);
    expect((await storedRow('user-busy')).state).toBe('active');
    expect(await counter('identity_token_refresh_failures_total', { reason: 'rate_limited' })).toBe(1);
    expect(await refreshRecord('user-busy')).toMatchObject({
      last_refreshed_at: expect.any(Date),
      last_refresh_error: 'rate_limited',
      last_refresh_error_at: expect.any(Date),
    });
  });

  it("never demands more than half a token's lifetime, so a fresh token is not refreshed again and again", async () => {
    await connect('user-demanding');
    const first = await accessTokens.getAccessToken('user-demanding', 7200);
    expect((await accessTokens.getAccessToken('user-demanding', 7200)).accessToken).toBe(first.accessToken);
    offsetMs = 3601_000;
    expect((await accessTokens.getAccessToken('user-demanding', 300)).accessToken).toBe(first.accessToken);
    const refreshed = await accessTokens.getAccessToken('user-demanding', 7200);
    expect(refreshed.accessToken).not.toBe(first.accessToken);
  });

  it('answers UNAVAILABLE while Calendly fails, keeping the connection and its refresh token, and recovers', async () => {
    await connect('user-outage');
    const before = await storedRow('user-outage');
    await simControl(sim, 'POST', '/_sim/faults', { api_errors: { status: 503, count: 10, path: '/oauth/token' } });
    offsetMs = 2 * 3600_000;
    const refused = await refusal(accessTokens.getAccessToken('user-outage'));
    expect(refused.code).toBe(GrpcStatus.UNAVAILABLE);
    expect(await storedRow('user-outage')).toEqual(before);
    expect(await counter('identity_token_refresh_failures_total', { reason: 'http_503' })).toBe(1);
    await simControl(sim, 'DELETE', '/_sim/faults');
    offsetMs = 2 * 3600_000;
    const recovered = await accessTokens.getAccessToken('user-outage');
    expect(recovered.expiresAt!.getTime()).toBeGreaterThan(Date.now() + 7_000_000);
  });

  it("reports calsync's own refused client credentials as INTERNAL without touching the connection", async () => {
    await connect('user-misconfigured');
    const before = await storedRow('user-misconfigured');
    await simControl(sim, 'POST', '/_sim/settings', { clientSecret: 'rotated-at-calendly' });
    try {
      offsetMs = 2 * 3600_000;
      const refused = await refusal(accessTokens.getAccessToken('user-misconfigured'));
      expect(refused.code).toBe(GrpcStatus.INTERNAL);
      expect(refused.message).toContain('invalid_client');
      expect(await storedRow('user-misconfigured')).toEqual(before);
    } finally {
      await simControl(sim, 'POST', '/_sim/settings', { clientSecret });
    }
  });

  it('records when a refresh last succeeded, and why the last one that failed did, in the words of the metrics', async () => {
    await connect('user-record');
    expect(await refreshRecord('user-record')).toEqual({
      last_refreshed_at: null,
      last_refresh_error: null,
      last_refresh_error_at: null,
    });
    offsetMs = 2 * 3600_000;
    await accessTokens.getAccessToken('user-record');
    const refreshed = await refreshRecord('user-record');
    expect(refreshed).toMatchObject({ last_refreshed_at: expect.any(Date), last_refresh_error: null });

    const failuresBefore = await counter('identity_token_refresh_failures_total');
    await simControl(sim, 'POST', '/_sim/settings', { clientSecret: 'rotated-at-calendly' });
    try {
      offsetMs = 4 * 3600_000;
      expect((await refusal(accessTokens.getAccessToken('user-record'))).code).toBe(GrpcStatus.INTERNAL);
    } finally {
      await simControl(sim, 'POST', '/_sim/settings', { clientSecret });
    }
    const failed = await refreshRecord('user-record');
    expect(failed.last_refresh_error).toMatch(/^http_4\d\d_invalid_client$/);
    expect(failed.last_refreshed_at).toEqual(refreshed.last_refreshed_at);
    expect((await counter('identity_token_refresh_failures_total')) - failuresBefore).toBe(1);
    expect(
      await counter('identity_token_refresh_failures_total', { reason: failed.last_refresh_error! }),
    ).toBeGreaterThan(0);

    // A later success keeps the failure on record beside the newer refresh time.
    await accessTokens.getAccessToken('user-record');
    const recovered = await refreshRecord('user-record');
    expect(recovered.last_refreshed_at!.getTime()).toBeGreaterThan(refreshed.last_refreshed_at!.getTime());
    expect(recovered.last_refresh_error).toBe(failed.last_refresh_error);
  });

  it('hands a personal access token out as it is, whatever validity is asked for', async () => {
    const simUser = await createSimUser(sim);
    await connections.connectWithPersonalToken('user-pat', simUser.personal_access_token);
    offsetMs = 365 * 24 * 3600_000;
    const token = await accessTokens.getAccessToken('user-pat', 7200);
    expect(token).toMatchObject({ accessToken: simUser.personal_access_token, kind: 'personal_token' });
    expect(token.expiresAt).toBeUndefined();
  });
});
