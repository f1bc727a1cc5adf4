import { GrpcStatus } from '@calsync/service-kit';
import { bookAndReceive, refusalOf, simSubscriptions, startHarness, type Harness } from './harness';

let h: Harness;

beforeAll(async () => {
  h = await startHarness('remove');
});

afterAll(() => h?.stop());

it("disconnecting A leaves B's subscription active at Calendly and B's deliveries flowing", async () => {
  const alice = await h.connectWithToken('rm-alice');
  const bob = await h.connectWithToken('rm-bob');
  const aliceHook = (await h.subscription.ensureUserWebhook({ userId: 'rm-alice' })).webhook!.hookId;
  const bobHook = (await h.subscription.ensureUserWebhook({ userId: 'rm-bob' })).webhook!.hookId;

  expect(await h.subscription.removeUserWebhooks({ userId: 'rm-alice' })).toEqual({
    removedLocally: 1,
    deletedRemotely: 1,
    leftForReconcile: 0,
  });
  await h.identity.disconnect({ userId: 'rm-alice' });

  expect(await simSubscriptions(h, alice)).toEqual([]);
  expect(await simSubscriptions(h, bob)).toEqual([expect.objectContaining({ state: 'active' })]);
  expect((await h.subscription.listUserWebhooks({ userId: 'rm-bob' })).webhooks.map((w) => w.hookId)).toEqual([
    bobHook,
  ]);
  expect(await refusalOf(h, aliceHook)).toBe('VERIFY_FAILURE_HOOK_NOT_FOUND');
  expect(await bookAndReceive(h, bob, bobHook)).toMatchObject({ outcome: 'ok', userId: 'rm-bob' });
});

it('is idempotent: removing again changes nothing', async () => {
  expect(await h.subscription.removeUserWebhooks({ userId: 'rm-alice' })).toEqual({
    removedLocally: 0,
    deletedRemotely: 0,
    leftForReconcile: 0,
  });
});

it('cleans up locally when the token no longer works, and reconcile deletes the rest once it can', async () => {
  const carol = await h.connectWithToken('rm-carol');
  const hookId = (await h.subscription.ensureUserWebhook({ userId: 'rm-carol' })).webhook!.hookId;
  await h.identity.disconnect({ userId: 'rm-carol' });

  expect(await h.subscription.removeUserWebhooks({ userId: 'rm-carol' })).toEqual({
    removedLocally: 1,
    deletedRemotely: 0,
    leftForReconcile: 1,
  });
  expect(await refusalOf(h, hookId)).toBe('VERIFY_FAILURE_HOOK_NOT_FOUND');
  expect(await simSubscriptions(h, carol)).toHaveLength(1);

  // Back with a working token, the leftover is swept and no webhook is made behind Ensure's back.
  await h.identity.connectWithPersonalToken({ userId: 'rm-carol', token: carol.personal_access_token });
  expect(await h.subscription.reconcile({ userId: 'rm-carol' })).toMatchObject({ leftoversDeleted: 1, recreated: 0 });
  expect(await simSubscriptions(h, carol)).toEqual([]);
  expect((await h.subscription.listUserWebhooks({ userId: 'rm-carol' })).webhooks).toEqual([]);
});

it('refuses a request without a user id', async () => {
  const error = await h.subscription.removeUserWebhooks({ userId: '' }).catch((caught: unknown) => caught);
  expect((error as { code: number }).code).toBe(GrpcStatus.INVALID_ARGUMENT);
});
