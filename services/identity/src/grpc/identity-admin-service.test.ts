import { startSimulator, type Simulator } from '@calsync/calendly-sim';
import { createSimUser, simControl, type SimUser } from '@calsync/calendly-sim/testing';
import { identityAdminV1, identityV1 } from '@calsync/proto';
import { grpcIdentities, GrpcStatus, type PromiseClient } from '@calsync/service-kit';
import { clientAs, createTestDatabase, type TestDatabase } from '@calsync/service-kit/testing';
import {
  accessTokenExpired,
  connectWithOAuth,
  failureOf,
  newSealingKey,
  openStoredSecrets,
  revokeAtCalendly,
  sealerFor,
  startTestIdentity,
  storedRefreshToken,
  type TestIdentity,
} from '../../test/harness';

/*
 * IdentityAdminService.ListConnections against real Postgres and the Calendly simulator: every
 * connection state and refresh outcome here is reached the way production reaches it.
 */

const { ConnectionState } = identityV1;
type AdminClient = PromiseClient<typeof identityAdminV1.IdentityAdminServiceService>;

const keys = { k1: newSealingKey() };
const sealer = sealerFor(keys, 'k1');
const everything = { state: 0, pageSize: 0, cursor: '' };
let database: TestDatabase;
let sim: Simulator;
let identity: TestIdentity;
let admin: AdminClient;
const simUsers = new Map<string, SimUser>();

const settings = (body: Record<string, unknown>) => simControl(sim, 'POST', '/_sim/settings', body);
const faults = (body: Record<string, unknown>) => simControl(sim, 'POST', '/_sim/faults', body);

async function connect(userId: string): Promise<void> {
  const simUser = await createSimUser(sim);
  simUsers.set(userId, simUser);
  await connectWithOAuth(identity.client, userId, simUser);
}

beforeAll(async () => {
  database = await createTestDatabase('identity_admin');
  sim = await startSimulator({ port: 0 });
  // One try per token request, so a failing refresh fails at once.
  identity = await startTestIdentity({ databaseUrl: database.url, sim, keys, env: { CALENDLY_MAX_RETRIES: '0' } });
  admin = await clientAs(grpcIdentities.operator, identityAdminV1.IdentityAdminServiceService, identity.address);

  const personal = await createSimUser(sim);
  await identity.client.connectWithPersonalToken({ userId: 'adm-personal', token: personal.personal_access_token });
  // Access tokens that live a second, so each OAuth user's next GetAccessToken refreshes.
  await settings({ accessTokenTtlSeconds: 1 });
  for (const userId of ['adm-refreshed', 'adm-revoked', 'adm-unreachable']) await connect(userId);
  await settings({ accessTokenTtlSeconds: 7200 });

  await accessTokenExpired(database.url, 'adm-refreshed');
  await identity.client.getAccessToken({ userId: 'adm-refreshed', minValiditySeconds: 0 });

  await revokeAtCalendly(sim, await storedRefreshToken(database.url, sealer, 'adm-revoked'));
  await accessTokenExpired(database.url, 'adm-revoked');
  expect(
    await failureOf(identity.client.getAccessToken({ userId: 'adm-revoked', minValiditySeconds: 0 })),
  ).toMatchObject({ reason: 'REAUTH_REQUIRED' });

  await accessTokenExpired(database.url, 'adm-unreachable');
  await faults({ api_errors: { status: 503, count: 1, path: '/oauth/token' } });
  expect(
    await failureOf(identity.client.getAccessToken({ userId: 'adm-unreachable', minValiditySeconds: 0 })),
  ).toMatchObject({ code: GrpcStatus.UNAVAILABLE });
}, 60_000);

afterAll(async () => {
  admin?.close();
  await identity?.stop();
  await sim?.stop();
  await database?.drop();
});

const byUser = (connections: identityV1.Connection[]) =>
  new Map(connections.map((connection) => [connection.userId, connection]));

it('pages through every connection in user id order with an opaque cursor, and never shows a secret', async () => {
  const first = await admin.listConnections({ ...everything, pageSize: 3 });
  expect(first.connections.map((connection) => connection.userId)).toEqual([
    'adm-personal',
    'adm-refreshed',
    'adm-revoked',
  ]);
  expect(first.nextCursor).not.toBe('');
  expect(first.nextCursor).not.toContain('adm-');
  const second = await admin.listConnections({ ...everything, pageSize: 3, cursor: first.nextCursor });
  expect(second).toMatchObject({ connections: [{ userId: 'adm-unreachable' }], nextCursor: '' });

  const answered = JSON.stringify(
    [...first.connections, ...second.connections].map((connection) => identityV1.Connection.toJSON(connection)),
  );
  const secrets = [...(await openStoredSecrets(database.url, sealer)).values()].flatMap((opened) =>
    Object.values(opened),
  );
  expect(secrets.length).toBeGreaterThan(4);
  for (const secret of secrets) expect(answered).not.toContain(secret);
  expect(answered).not.toMatch(/cs1:/);
});

it('filters by state, with each connection’s last refresh and last refresh error', async () => {
  const reauth = await admin.listConnections({
    ...everything,
    state: ConnectionState.CONNECTION_STATE_REAUTH_REQUIRED,
  });
  expect(reauth.connections).toHaveLength(1);
  expect(reauth.connections[0]).toMatchObject({
    userId: 'adm-revoked',
    state: ConnectionState.CONNECTION_STATE_REAUTH_REQUIRED,
    lastRefreshError: 'invalid_grant',
    lastRefreshErrorAt: expect.any(Date),
  });

  const active = byUser(
    (await admin.listConnections({ ...everything, state: ConnectionState.CONNECTION_STATE_ACTIVE })).connections,
  );
  expect([...active.keys()]).toEqual(['adm-personal', 'adm-refreshed', 'adm-unreachable']);
  expect(active.get('adm-personal')).toMatchObject({ lastRefreshError: '' });
  expect(active.get('adm-personal')!.lastRefreshedAt).toBeUndefined();
  const refreshed = active.get('adm-refreshed')!;
  expect(refreshed.lastRefreshError).toBe('');
  expect(refreshed.lastRefreshedAt!.getTime()).toBeGreaterThan(refreshed.connectedAt!.getTime());
  // Calendly's 503 left the connection active, with the failure on record.
  expect(active.get('adm-unreachable')).toMatchObject({
    lastRefreshError: 'http_503',
    lastRefreshErrorAt: expect.any(Date),
  });
  expect(active.get('adm-unreachable')!.lastRefreshedAt).toBeUndefined();
});

it('starts a reconnected connection’s refresh record afresh', async () => {
  await connectWithOAuth(identity.client, 'adm-revoked', simUsers.get('adm-revoked')!);
  const { connections } = await admin.listConnections({
    ...everything,
    state: ConnectionState.CONNECTION_STATE_REAUTH_REQUIRED,
  });
  expect(connections).toEqual([]);
  const back = byUser((await admin.listConnections(everything)).connections).get('adm-revoked')!;
  expect(back).toMatchObject({ state: ConnectionState.CONNECTION_STATE_ACTIVE, lastRefreshError: '' });
  expect(back.lastRefreshErrorAt).toBeUndefined();
});

it('exports every kind and state to Prometheus, zero included, without any user label', async () => {
  const metrics = await (await fetch(`http://127.0.0.1:${identity.app.ports.metrics}/metrics`)).text();
  expect(metrics).toMatch(/^identity_connections\{kind="oauth",state="active",service="identity"\} 3$/m);
  expect(metrics).toMatch(
    /^identity_connections\{kind="personal_token",state="reauth_required",service="identity"\} 0$/m,
  );
  expect(metrics).toMatch(/^identity_connections\{kind="oauth",state="reauth_required",service="identity"\} 0$/m);
  expect(metrics).not.toMatch(/adm-/);
});

it.each([
  ['a negative page size', { pageSize: -1 }, /page_size/],
  ['a page size over 500', { pageSize: 501 }, /page_size/],
  ['a cursor it never returned', { cursor: 'not a cursor!' }, /cursor/],
  ['a cursor that decodes to no user id', { cursor: Buffer.from('a\u0000b').toString('base64url') }, /cursor/],
  [
    'a cursor in another encoding of the same user',
    { cursor: `${Buffer.from('adm-personal').toString('base64url')}=` },
    /cursor/,
  ],
  ['a state that does not exist', { state: 99 }, /state/],
])('refuses %s with INVALID_ARGUMENT naming it', async (_label, bad, message) => {
  expect(await failureOf(admin.listConnections({ ...everything, ...bad }))).toMatchObject({
    code: GrpcStatus.INVALID_ARGUMENT,
    details: expect.stringMatching(message),
  });
});

it('answers the operator identity only', async () => {
  for (const caller of [grpcIdentities.gateway, grpcIdentities.subscription, grpcIdentities.meetings]) {
    const client = await clientAs(caller, identityAdminV1.IdentityAdminServiceService, identity.address);
    try {
      expect(await failureOf(client.listConnections(everything))).toMatchObject({
        code: GrpcStatus.PERMISSION_DENIED,
      });
    } finally {
      client.close();
    }
  }
});
