import { setTimeout as pause } from 'node:timers/promises';
import { startSimulator, type Simulator } from '@calsync/calendly-sim';
import { identityAdminV1 } from '@calsync/proto';
import { grpcIdentities, GrpcStatus } from '@calsync/service-kit';
import { captureLogger, clientAs, createTestDatabase, type TestDatabase } from '@calsync/service-kit/testing';
import { approveAuthorize, createSimUser, type SimUser } from '@calsync/calendly-sim/testing';
import {
  connectWithOAuth,
  expectNoPlaintextSecrets,
  identityEnv,
  newSealingKey,
  startTestIdentity,
  openStoredSecrets,
  redirectUri,
  runCommand,
  sealerFor,
  withDatabase,
} from '../../test/harness';

const keys = { k1: newSealingKey(), k2: newSealingKey() };
const captured = captureLogger('identity', 'debug');
let database: TestDatabase;
let sim: Simulator;

beforeAll(async () => {
  database = await createTestDatabase('identity_rotation');
  sim = await startSimulator({ port: 0 });
});

afterAll(async () => {
  await sim?.stop();
  await database?.drop();
});

/** identity in this process with the given keys, and a client of it. */
const startIdentity = (keyIds: (keyof typeof keys)[], activeKeyId: keyof typeof keys) =>
  startTestIdentity({
    databaseUrl: database.url,
    sim,
    keys: Object.fromEntries(keyIds.map((id) => [id, keys[id]])),
    activeKeyId,
    log: captured.log,
  });

async function sealedValues(): Promise<string[]> {
  return withDatabase(database.url, async (client) => {
    const connections = await client.query<{ a: string; r: string | null }>(
      'SELECT access_token_sealed AS a, refresh_token_sealed AS r FROM identity.connections',
    );
    const states = await client.query<{ v: string }>('SELECT code_verifier_sealed AS v FROM identity.oauth_states');
    return [
      ...connections.rows.flatMap((row) => [row.a, row.r].filter((value): value is string => value !== null)),
      ...states.rows.map((row) => row.v),
    ];
  });
}

describe('key rotation', () => {
  it('re-seals every row under the new key while calls keep succeeding, after which the old key can go', async () => {
    // Connections made under k1 alone: personal tokens and OAuth, and one connect still pending.
    const first = await startIdentity(['k1'], 'k1');
    const simUsers: SimUser[] = await Promise.all(Array.from({ length: 24 }, () => createSimUser(sim)));
    const userIds = simUsers.map((_, i) => `user-${i}`);
    await Promise.all(
      simUsers
        .slice(0, 20)
        .map((simUser, i) =>
          first.client.connectWithPersonalToken({ userId: userIds[i]!, token: simUser.personal_access_token }),
        ),
    );
    for (const [i, simUser] of simUsers.slice(20, 23).entries()) {
      await connectWithOAuth(first.client, userIds[20 + i]!, simUser);
    }
    const pending = await first.client.beginConnect({ userId: 'user-pending', redirectUri });
    const connected = userIds.slice(0, 23);
    const tokensBefore = new Map<string, string>();
    for (const userId of connected)
      tokensBefore.set(userId, (await first.client.getAccessToken({ userId, minValiditySeconds: 0 })).accessToken);
    first.client.close();
    await first.app.stop();
    expect((await sealedValues()).every((value) => value.startsWith('cs1:k1:'))).toBe(true);

    // Every replica now opens both keys and seals with k2; the command re-seals the rest.
    const second = await startIdentity(['k1', 'k2'], 'k2');
    let running = true;
    let duringRotation = 0;
    let rotating = false;
    const failures: unknown[] = [];
    const load = Array.from({ length: 4 }, async (_, worker) => {
      for (let n = worker; running; n += 4) {
        const userId = connected[n % connected.length]!;
        try {
          const answer = await second.client.getAccessToken({ userId, minValiditySeconds: 0 });
          if (answer.accessToken !== tokensBefore.get(userId)) failures.push(new Error(`wrong token for ${userId}`));
          if (rotating) duringRotation++;
        } catch (error) {
          failures.push(error);
        }
        // Steady traffic, not a busy loop: the machine's cores are shared with the command under test.
        await pause(5);
      }
    });
    rotating = true;
    const rotation = await runCommand('rotate-keys.js', { ...second.env, ROTATE_BATCH_SIZE: '5' });
    rotating = false;
    running = false;
    await Promise.all(load);

    expect(rotation.code).toBe(0);
    expect(failures).toEqual([]);
    expect(duringRotation).toBeGreaterThan(20);
    const report = rotation.lines.map((line) => JSON.parse(line) as Record<string, unknown>).find((l) => l.settled);
    expect(report).toMatchObject({ resealed: { connections: 23, oauth_states: 1 }, unreadable: 0, settled: true });
    const sealed = await sealedValues();
    expect(sealed).toHaveLength(20 + 3 * 2 + 1);
    expect(sealed.filter((value) => !value.startsWith('cs1:k2:'))).toEqual([]);
    second.client.close();
    await second.app.stop();

    // k1 retired: everything, the pending connect's verifier included, opens with k2 alone.
    const third = await startIdentity(['k2'], 'k2');
    for (const userId of connected)
      expect((await third.client.getAccessToken({ userId, minValiditySeconds: 0 })).accessToken).toBe(
        tokensBefore.get(userId),
      );
    const { code, state } = await approveAuthorize(pending.authorizeUrl, simUsers[23]!);
    expect((await third.client.completeConnect({ state, code })).connection!.calendlyUserUri).toBe(simUsers[23]!.uri);

    const opened = await openStoredSecrets(database.url, sealerFor({ k2: keys.k2 }, 'k2'));
    await expectNoPlaintextSecrets({
      databaseUrl: database.url,
      lines: [...captured.lines, ...rotation.lines],
      secrets: [
        ...simUsers.map((simUser) => simUser.personal_access_token),
        ...tokensBefore.values(),
        ...[...opened.values()].flatMap((secrets) => Object.values(secrets)),
        pending.state,
        code,
      ],
    });
    third.client.close();
    await third.app.stop();
  });

  it('exits non-zero and names the row when a sealed value cannot be opened, leaving it as it is', async () => {
    const identity = await startIdentity(['k2'], 'k2');
    const [one, two] = await Promise.all([createSimUser(sim), createSimUser(sim)]);
    await identity.client.connectWithPersonalToken({ userId: 'tampered-a', token: one!.personal_access_token });
    await identity.client.connectWithPersonalToken({ userId: 'tampered-b', token: two!.personal_access_token });
    identity.client.close();
    await identity.app.stop();
    // Another user's ciphertext: it must not open under this user's id.
    await withDatabase(database.url, (client) =>
      client.query(
        `UPDATE identity.connections SET access_token_sealed =
           (SELECT access_token_sealed FROM identity.connections WHERE user_id = 'tampered-a')
         WHERE user_id = 'tampered-b'`,
      ),
    );
    const env = await identityEnv({ databaseUrl: database.url, sim, keys, activeKeyId: 'k1' });
    const rotation = await runCommand('rotate-keys.js', env);
    expect(rotation.code).toBe(1);
    expect(rotation.lines.join('\n')).toContain('"userId":"tampered-b"');
    const stillTampered = await withDatabase(database.url, (client) =>
      client.query<{ a: string }>(
        "SELECT access_token_sealed AS a FROM identity.connections WHERE user_id = 'tampered-b'",
      ),
    );
    expect(stillTampered.rows[0]!.a.startsWith('cs1:k2:')).toBe(true);

    const after = await startIdentity(['k1', 'k2'], 'k1');
    const refused = await after.client
      .getAccessToken({ userId: 'tampered-b', minValiditySeconds: 0 })
      .catch((e: unknown) => e);
    expect((refused as { code: number }).code).toBe(GrpcStatus.INTERNAL);
    after.client.close();
    await after.app.stop();
  });

  it("re-seals through the operator's RotateSealingKeys (calsync rotate-keys), and refuses any other caller", async () => {
    const first = await startIdentity(['k1'], 'k1');
    const simUsers = await Promise.all([createSimUser(sim), createSimUser(sim)]);
    for (const [i, simUser] of simUsers.entries())
      await first.client.connectWithPersonalToken({ userId: `rpc-${i}`, token: simUser.personal_access_token });
    first.client.close();
    await first.app.stop();

    const second = await startIdentity(['k1', 'k2'], 'k2');
    const address = `127.0.0.1:${second.app.ports.grpc}`;
    const asGateway = await clientAs(grpcIdentities.gateway, identityAdminV1.IdentityAdminServiceService, address);
    const refused = await asGateway.rotateSealingKeys({}).catch((error: unknown) => error);
    expect((refused as { code: number }).code).toBe(GrpcStatus.PERMISSION_DENIED);
    asGateway.close();
    expect((await sealedValues()).some((value) => value.startsWith('cs1:k1:'))).toBe(true);

    const admin = await clientAs(grpcIdentities.operator, identityAdminV1.IdentityAdminServiceService, address);
    const report = await admin.rotateSealingKeys({});
    expect(report).toMatchObject({ activeKeyId: 'k2', unreadable: 0, settled: true });
    expect(report.resealed).toBeGreaterThanOrEqual(2);
    expect((await sealedValues()).filter((value) => !value.startsWith('cs1:k2:'))).toEqual([]);
    // Again: nothing left to do.
    expect(await admin.rotateSealingKeys({})).toMatchObject({ resealed: 0, settled: true });
    admin.close();
    second.client.close();
    await second.app.stop();
  });
});
