import { startSimulator, type Simulator } from '@calsync/calendly-sim';
import { identityV1 } from '@calsync/proto';
import type { PromiseClient } from '@calsync/service-kit';
import {
  clientAsAllowedCallers,
  createTestDatabase,
  spawnService,
  type ServiceProcess,
  type TestDatabase,
} from '@calsync/service-kit/testing';
import { identityCallers } from '../grpc/identity-service';
import { approveAuthorize, createSimUser, simControl } from '@calsync/calendly-sim/testing';
import {
  accessTokenExpired,
  builtEntry,
  expectNoPlaintextSecrets,
  identityEnv,
  isActiveAtCalendly,
  metricSum,
  newSealingKey,
  openStoredSecrets,
  redirectUri,
  sealerFor,
  whoIs,
} from '../../test/harness';

type IdentityClient = PromiseClient<typeof identityV1.IdentityServiceService>;

const keys = { k1: newSealingKey() };
const sealer = sealerFor(keys, 'k1');
let database: TestDatabase;
let sim: Simulator;
let replicas: ServiceProcess[] = [];
let clients: IdentityClient[] = [];

beforeAll(async () => {
  database = await createTestDatabase('identity_replicas');
  sim = await startSimulator({ port: 0 });
  const env = await identityEnv({ databaseUrl: database.url, sim, keys, activeKeyId: 'k1' });
  replicas = await Promise.all([0, 1].map(() => spawnService({ entry: builtEntry('main.js'), env })));
  clients = await Promise.all(
    replicas.map((replica) =>
      clientAsAllowedCallers(
        identityV1.IdentityServiceService,
        `127.0.0.1:${String(replica.ready.grpcPort)}`,
        identityCallers,
        { defaultTimeoutMs: 20_000 },
      ),
    ),
  );
});

afterAll(async () => {
  for (const client of clients) client.close();
  await Promise.all(replicas.map((replica) => replica.stop()));
  await sim?.stop();
  await database?.drop();
});

describe('refresh across replicas', () => {
  it('refreshes an expired token exactly once for 100 concurrent calls spread over two processes, and all get the new token', async () => {
    const [a, b] = clients as [IdentityClient, IdentityClient];
    const simUser = await createSimUser(sim);
    await simControl(sim, 'POST', '/_sim/settings', { accessTokenTtlSeconds: 1 });
    const begun = await a.beginConnect({ userId: 'user-busy', redirectUri });
    const { code, state } = await approveAuthorize(begun.authorizeUrl, simUser);
    await b.completeConnect({ state, code });
    // From here Calendly allows this user one more token request this minute: a second refresh
    // would be refused by the simulator and fail calls.
    await simControl(sim, 'POST', '/_sim/settings', { accessTokenTtlSeconds: 7200, tokenRequestsPerUserPerMinute: 2 });
    const before = (await openStoredSecrets(database.url, sealer)).get('user-busy')!;
    await accessTokenExpired(database.url, 'user-busy');

    const answers = await Promise.all(
      Array.from({ length: 100 }, (_, i) =>
        clients[i % 2]!.getAccessToken({ userId: 'user-busy', minValiditySeconds: 0 }),
      ),
    );
    const tokens = new Set(answers.map((answer) => answer.accessToken));
    expect(tokens.size).toBe(1);
    const [token] = [...tokens] as [string];
    expect(token).not.toBe(before.access_token);
    expect(await whoIs(sim, token)).toBe(simUser.uri);

    const after = (await openStoredSecrets(database.url, sealer)).get('user-busy')!;
    expect(after.access_token).toBe(token);
    expect(after.refresh_token).not.toBe(before.refresh_token);
    expect(await isActiveAtCalendly(sim, before.refresh_token!)).toBe(false);
    expect(await isActiveAtCalendly(sim, after.refresh_token!)).toBe(true);

    // Counted at the simulator itself: one code exchange, then exactly one refresh.
    const counted = await simControl<{ authorization_code: number; refresh_token: number }>(
      sim,
      'GET',
      `/_sim/token_requests?user=${encodeURIComponent(simUser.uri)}`,
    );
    expect(counted).toMatchObject({ authorization_code: 1, refresh_token: 1 });

    // Both processes together sent Calendly one refresh, and one refresh succeeded.
    const ports = replicas.map((replica) => Number(replica.ready.metricsPort));
    expect(await metricSum(ports, 'calendly_requests_total', { operation: 'refreshToken' })).toBe(1);
    expect(await metricSum(ports, 'identity_token_refreshes_total')).toBe(1);
    expect(await metricSum(ports, 'identity_token_refresh_failures_total')).toBe(0);

    const secrets = [
      simUser.personal_access_token,
      code,
      state,
      token,
      ...Object.values(before),
      ...Object.values(after),
    ];
    await expectNoPlaintextSecrets({
      databaseUrl: database.url,
      lines: replicas.flatMap((replica) => replica.lines),
      secrets,
    });
  });
});
