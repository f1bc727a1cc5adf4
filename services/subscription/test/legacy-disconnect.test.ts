import { createCalendlyClient } from '@calsync/calendly-client';
import { createPool, type Pool } from '@calsync/service-kit';
import { captureLogger } from '@calsync/service-kit/testing';
import type { Connections } from '../src/upstream/identity-connections';
import { importLegacyWebhooks, retireLegacyWebhooks } from '../src/legacy/legacy-webhooks';
import { createWebhookRepository } from '../src/webhooks/webhook-repository';
import {
  book,
  createSeedSubscription,
  deliveriesOf,
  startHarness,
  testSealer,
  waitFor,
  type Harness,
  type SimUser,
} from './harness';

// Three users of one organization on the seed's organization-wide subscription: its creator
// (an admin) and two members. The creator disconnecting must not cut the others off.
const { log } = captureLogger('legacy-disconnect', 'silent');
const orgKey = 'seed-era-organization-key-of-the-shared-org';
const legacyEvents = ['invitee.created', 'invitee.canceled'];

let h: Harness;
let pool: Pool;
let connections: Connections;
let admin: SimUser;
let bob: SimUser;
let carol: SimUser;
let organizationSubscription: string;

/** What the legacy URL made of the organization-wide delivery of this booking. */
async function legacyOutcome(user: SimUser, invitee: string) {
  const booking = await book(h, user, invitee);
  const [delivery] = await waitFor(() => {
    const found = deliveriesOf(h, booking).filter((entry) => entry.hookId === '');
    return found.length > 0 ? found : undefined;
  });
  return { outcome: delivery!.outcome, userId: delivery!.userId };
}

async function organizationSubscriptionAtCalendly() {
  const { collection } = (await h.sim_('/_sim/webhook_subscriptions')) as {
    collection: { uri: string; scope: string; state: string }[];
  };
  return collection.find((subscription) => subscription.uri === organizationSubscription);
}

beforeAll(async () => {
  h = await startHarness('legacydisc', { sim: { hookUrlUniqueness: 'user' } });
  pool = createPool({ url: h.database.url, schema: 'subscription', log });
  connections = await h.identityConnections();
  admin = await h.connectWithToken('sh-admin', { organization: 'shared-org' });
  bob = await h.connectWithToken('sh-bob', { organization: 'shared-org' });
  carol = await h.connectWithToken('sh-carol', { organization: 'shared-org' });
  // The members already have hooks of their own; the organization-wide one carries them too.
  await h.subscription.ensureUserWebhook({ userId: 'sh-bob' });
  await h.subscription.ensureUserWebhook({ userId: 'sh-carol' });
  organizationSubscription = await createSeedSubscription(h, admin, {
    scope: 'organization',
    signingKey: orgKey,
    events: legacyEvents,
  });
  await importLegacyWebhooks(
    { repository: createWebhookRepository(pool), sealer: testSealer, publicBaseUrl: h.receiver.url },
    [
      {
        user_id: 'sh-admin',
        calendly_user_uri: admin.uri,
        calendly_organization_uri: admin.organization,
        calendly_subscription_uri: organizationSubscription,
        scope: 'organization',
        events: legacyEvents,
        signing_key: orgKey,
      },
    ],
  );
});

afterAll(async () => {
  connections?.close();
  await pool?.end();
  await h?.stop();
});

it("keeps an organization-wide legacy subscription when its creator disconnects: the others' deliveries go on", async () => {
  expect(await legacyOutcome(bob, 'before')).toEqual({ outcome: 'ok', userId: 'sh-bob' });

  // The creator disconnects as the gateway does it: webhooks first, then the credentials.
  await h.subscription.removeUserWebhooks({ userId: 'sh-admin' });
  await h.identity.disconnect({ userId: 'sh-admin' });

  expect(await organizationSubscriptionAtCalendly()).toMatchObject({ state: 'active' });
  expect(await legacyOutcome(bob, 'after-bob')).toEqual({ outcome: 'ok', userId: 'sh-bob' });
  expect(await legacyOutcome(carol, 'after-carol')).toEqual({ outcome: 'ok', userId: 'sh-carol' });
  // Nothing reaches the user who left, not even through the shared subscription.
  expect((await legacyOutcome(admin, 'after-admin')).outcome).toBe('VERIFY_FAILURE_PAYLOAD_OTHER_USER');
  expect((await h.subscription.listUserWebhooks({ userId: 'sh-admin' })).webhooks).toEqual([]);
});

it('leaves the shared subscription to the retire command, which needs its creator to delete it at Calendly', async () => {
  const calendly = createCalendlyClient({ apiUrl: h.sim.url, authUrl: h.sim.url, log });
  const retire = () => retireLegacyWebhooks({ repository: createWebhookRepository(pool), connections, calendly, log });
  // Everyone still connected has a hook of their own, so nobody waits; but only the creator (or
  // an admin) may delete it, and the creator is gone: it says so and deletes nothing.
  const refused = await retire();
  expect(refused).toMatchObject({
    status: 'retired',
    deleted: 0,
    failed: [{ subscription: organizationSubscription }],
  });
  expect(refused.status === 'retired' && refused.failed[0]!.error).toMatch(
    /creator sh-admin has no working Calendly connection/,
  );
  expect(await organizationSubscriptionAtCalendly()).toMatchObject({ state: 'active' });
  expect(await legacyOutcome(carol, 'after-refused-retire')).toEqual({ outcome: 'ok', userId: 'sh-carol' });

  await h.identity.connectWithPersonalToken({ userId: 'sh-admin', token: admin.personal_access_token });
  expect(await retire()).toEqual({ status: 'retired', deleted: 1, failed: [] });
  expect(await organizationSubscriptionAtCalendly()).toBeUndefined();
});
