import { subscriptionV1 } from '@calsync/proto';
import { GrpcStatus, reasonOf } from '@calsync/service-kit';
import { bookAndReceive, simSubscriptions, startHarness, type Harness, type SimUser } from './harness';

const { SigningKeySource } = subscriptionV1;

let h: Harness;

beforeAll(async () => {
  h = await startHarness('oauth');
});

afterAll(() => h?.stop());

const deliveryTo = (user: SimUser, hookId: string, invitee?: string) => bookAndReceive(h, user, hookId, invitee);

it('subscribes an OAuth connection with the application key when Calendly ignores supplied keys', async () => {
  const user = await h.connectWithOAuth('oauth-app');
  const { webhook } = await h.subscription.ensureUserWebhook({ userId: 'oauth-app' });
  expect(webhook!.signingKeySource).toBe(SigningKeySource.SIGNING_KEY_SOURCE_APPLICATION);
  expect((await simSubscriptions(h, user))[0]).toMatchObject({ signing_key_source: 'application', state: 'active' });
  expect(await deliveryTo(user, webhook!.hookId)).toMatchObject({ outcome: 'ok', userId: 'oauth-app' });
});

it("rejects user A's delivery on user B's hook when both share the application key: the payload check catches it", async () => {
  const alice = await h.connectWithOAuth('oauth-alice');
  await h.connectWithOAuth('oauth-bob');
  const aliceHook = (await h.subscription.ensureUserWebhook({ userId: 'oauth-alice' })).webhook!.hookId;
  const bobHook = (await h.subscription.ensureUserWebhook({ userId: 'oauth-bob' })).webhook!.hookId;
  const delivery = await deliveryTo(alice, aliceHook, 'shared');
  expect(delivery.outcome).toBe('ok');
  const refused = await h.subscription
    .verifyAndResolveUser({ hookId: bobHook, signatureHeader: delivery.signature, rawBody: delivery.body })
    .then(
      () => undefined,
      (error: unknown) => error as { code: number },
    );
  expect(refused?.code).toBe(GrpcStatus.PERMISSION_DENIED);
  expect(reasonOf(refused)).toBe('VERIFY_FAILURE_PAYLOAD_OTHER_USER');
});

it('gives an OAuth subscription its own key when configured to trust that Calendly honours it', async () => {
  await h.sim_('/_sim/settings', { body: { oauthSigningKeyMode: 'supplied' } });
  try {
    const replica = await h.startReplica({ CALENDLY_OAUTH_HONOURS_SIGNING_KEY: 'true' });
    const user = await h.connectWithOAuth('oauth-own-key');
    const { webhook } = await replica.client.ensureUserWebhook({ userId: 'oauth-own-key' });
    expect(webhook!.signingKeySource).toBe(SigningKeySource.SIGNING_KEY_SOURCE_SUBSCRIPTION);
    expect((await simSubscriptions(h, user))[0]).toMatchObject({ signing_key_source: 'supplied' });
    expect(await deliveryTo(user, webhook!.hookId)).toMatchObject({ outcome: 'ok', userId: 'oauth-own-key' });
  } finally {
    await h.sim_('/_sim/settings', { body: { oauthSigningKeyMode: 'application' } });
  }
});
