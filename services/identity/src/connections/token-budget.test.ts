import { join } from 'node:path';
import { createPool, inTransaction, migrate, type Pool } from '@calsync/service-kit';
import { captureLogger, createTestDatabase, type TestDatabase } from '@calsync/service-kit/testing';
import { pruneTokenRequests, reserveTokenRequest } from './token-budget';

let database: TestDatabase;
let pools: Pool[];

beforeAll(async () => {
  database = await createTestDatabase('identity_budget');
  const { log } = captureLogger();
  await migrate({ url: database.url, schema: 'identity', dir: join(__dirname, '..', '..', 'migrations'), log });
  // Two pools stand for two replicas: the budget must hold across them.
  pools = [0, 1].map(() => createPool({ url: database.url, schema: 'identity', max: 10, log }));
});

afterAll(async () => {
  await Promise.all(pools.map((pool) => pool.end()));
  await database.drop();
});

const reserve = (pool: Pool, userId: string, perMinute = 8) =>
  inTransaction(pool, (client) => reserveTokenRequest(client, userId, perMinute));

describe('token request budget', () => {
  it('allows 8 token requests per user per minute across replicas, however many ask at once', async () => {
    const outcomes = await Promise.all(Array.from({ length: 20 }, (_, i) => reserve(pools[i % 2]!, 'user-a')));
    expect(outcomes.filter((outcome) => outcome.allowed)).toHaveLength(8);
    const refused = outcomes.filter((outcome) => !outcome.allowed);
    expect(refused).toHaveLength(12);
    for (const outcome of refused) {
      if (outcome.allowed) throw new Error('unreachable');
      expect(outcome.retryAfterSeconds).toBeGreaterThanOrEqual(1);
      expect(outcome.retryAfterSeconds).toBeLessThanOrEqual(60);
    }
  });

  it("counts each user on their own: one user's requests never use another's budget", async () => {
    expect(await reserve(pools[0]!, 'user-b')).toEqual({ allowed: true });
  });

  it('frees the budget once a request is older than a minute', async () => {
    for (let i = 0; i < 8; i++) expect((await reserve(pools[0]!, 'user-c')).allowed).toBe(true);
    expect((await reserve(pools[0]!, 'user-c')).allowed).toBe(false);
    await pools[0]!.query(
      "UPDATE token_requests SET requested_at = requested_at - interval '61 seconds' WHERE user_id = 'user-c'",
    );
    expect((await reserve(pools[1]!, 'user-c')).allowed).toBe(true);
  });

  it('prunes requests older than the window for every user', async () => {
    await pools[0]!.query("UPDATE token_requests SET requested_at = requested_at - interval '2 minutes'");
    expect(await pruneTokenRequests(pools[0]!)).toBeGreaterThan(0);
    const { rows } = await pools[0]!.query<{ count: string }>('SELECT count(*) AS count FROM token_requests');
    expect(Number(rows[0]!.count)).toBe(0);
  });

  it('forgets a request whose transaction rolled back', async () => {
    await expect(
      inTransaction(pools[0]!, async (client) => {
        await reserveTokenRequest(client, 'user-d', 1);
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    expect(await reserve(pools[0]!, 'user-d', 1)).toEqual({ allowed: true });
  });
});
