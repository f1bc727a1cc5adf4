import { createCalendlyClient } from '@calsync/calendly-client';
import { Client } from 'pg';
import { createPool, GrpcStatus, reasonOf, type Pool } from '@calsync/service-kit';
import { captureLogger } from '@calsync/service-kit/testing';
import type { Connections } from '../src/upstream/identity-connections';
import { importLegacyWebhooks, retireLegacyWebhooks } from '../src/legacy/legacy-webhooks';
import { signatureHeaderFor } from '../src/verify/signature';
import { createWebhookRepository } from '../src/webhooks/webhook-repository';
import {
  book,
  createSeedSubscription,
  deliveriesOf,
  waitFor,
  simSubscriptions,
  startHarness,
  testSealer,
  type Harness,
  type Received,
  type SimUser,
} from './harness';

const { log } = captureLogger('legacy', 'silent');
const bobKey = 'seed-era-key-of-bob-0123456789abcdef';
const orgKey = 'seed-era-organization-key-0123456789';
const legacyEvents = ['invitee.created', 'invitee.canceled'];

let h: Harness;
let pool: Pool;
let connections: Connections;
let admin: SimUser;
let bob: SimUser;
let carol: SimUser;
let dave: SimUser;
let carolHook: string;

const legacyUrl = () => `${h.receiver.url}/api/calendly/webhook`;

/** The first `count` deliveries of the booking that pass `filter`. */
async function deliveriesOfBooking(
  booking: { invitee: { uri: string } },
  count: number,
  filter: (entry: Received) => boolean,
) {
  return waitFor(() => {
    const found = deliveriesOf(h, booking).filter(filter);
    return found.length >= count ? found.slice(0, count) : undefined;
  });
}

beforeAll(async () => {
  // The seed's world: many subscriptions on one URL, unique per user.
  h = await startHarness('legacy', { sim: { hookUrlUniqueness: 'user' } });
  pool = createPool({ url: h.database.url, schema: 'subscription', log });
  connections = await h.identityConnections();
  admin = await h.connectWithToken('lg-admin', { organization: 'seed-org' });
  bob = await h.connectWithToken('lg-bob', { organization: 'seed-org' });
  carol = await h.connectWithToken('lg-carol', { organization: 'seed-org' });
  dave = (await h.sim_('/_sim/users', {
    body: { name: 'dave', email: 'dave@example.com', organization: 'seed-org' },
  })) as SimUser;
  carolHook = (await h.subscription.ensureUserWebhook({ userId: 'lg-carol' })).webhook!.hookId;

  const create = (user: SimUser, scope: 'user' | 'organization', signingKey: string) =>
    createSeedSubscription(h, user, { scope, signingKey, events: legacyEvents });
  const imported = await importLegacyWebhooks(
    { repository: createWebhookRepository(pool), sealer: testSealer, publicBaseUrl: h.receiver.url },
    [
      {
        user_id: 'lg-bob',
        calendly_user_uri: bob.uri,
        calendly_organization_uri: bob.organization,
        calendly_subscription_uri: await create(bob, 'user', bobKey),
        scope: 'user',
        events: legacyEvents,
        signing_key: bobKey,
      },
      {
        user_id: 'lg-admin',
        calendly_user_uri: admin.uri,
        calendly_organization_uri: admin.organization,
        calendly_subscription_uri: await create(admin, 'organization', orgKey),
        scope: 'organization',
        events: legacyEvents,
        signing_key: orgKey,
      },
    ],
  );
  expect(imported).toEqual({ imported: 2, skipped: 0 });
});

afterAll(async () => {
  connections?.close();
  await pool?.end();
  await h?.stop();
});

it("verifies a legacy delivery by its creator's key, found through created_by", async () => {
  const booking = await book(h, bob);
  // Bob's own legacy subscription and the organization's both deliver to the single URL.
  const deliveries = await deliveriesOfBooking(booking, 2, (entry) => entry.hookId === '');
  expect(deliveries.map((entry) => [entry.outcome, entry.userId])).toEqual([
    ['ok', 'lg-bob'],
    ['ok', 'lg-bob'],
  ]);
});

it('routes an organization-wide delivery to the connected host, with the same key as their own hook', async () => {
  const booking = await book(h, carol);
  const [legacy] = await deliveriesOfBooking(booking, 1, (entry) => entry.hookId === '');
  const [own] = await deliveriesOfBooking(booking, 1, (entry) => entry.hookId === carolHook);
  expect(legacy).toMatchObject({ outcome: 'ok', userId: 'lg-carol' });
  expect(own).toMatchObject({ outcome: 'ok', userId: 'lg-carol' });
  const keyOf = async (entry: Received) =>
    (
      await h.subscription.verifyAndResolveUser({
        hookId: entry.hookId,
        signatureHeader: entry.signature,
        rawBody: entry.body,
      })
    ).deliveryKey;
  expect(await keyOf(legacy!)).toBe(await keyOf(own!));
});

it('refuses an organization-wide delivery whose host is nobody we serve', async () => {
  const booking = await book(h, dave);
  const [delivery] = await deliveriesOfBooking(booking, 1, (entry) => entry.hookId === '');
  expect(delivery!.outcome).toBe('VERIFY_FAILURE_PAYLOAD_OTHER_USER');
});

/** A legacy delivery envelope created by `createdBy`, about one invitee of `members`' event. */
const legacyBody = (createdBy: string, invitee: string, members: string[] = []) =>
  Buffer.from(
    JSON.stringify({
      event: 'invitee.created',
      created_at: new Date().toISOString(),
      created_by: createdBy,
      payload: {
        uri: `https://api.calendly.com/scheduled_events/E/invitees/${invitee}`,
        scheduled_event: { event_memberships: members.map((user) => ({ user })) },
      },
    }),
  );

/** VerifyAndResolveUser on the legacy URL for `rawBody` signed now with `key`: the user, or the refusal. */
const verifyLegacy = (rawBody: Buffer, key: string) =>
  h.subscription
    .verifyAndResolveUser({
      hookId: '',
      signatureHeader: signatureHeaderFor(key, Math.floor(Date.now() / 1000), rawBody),
      rawBody,
    })
    .then(
      (answer) => ({ code: 0, reason: 'ok', userId: answer.userId }),
      (error: unknown) => ({ code: (error as { code: number }).code, reason: reasonOf(error), userId: undefined }),
    );

it('never tries other keys: an unknown creator is NOT_FOUND and a wrong key a mismatch', async () => {
  const body = (createdBy: string) => legacyBody(createdBy, 'X');
  const verify = (rawBody: Buffer, key: string) =>
    verifyLegacy(rawBody, key).then(({ code, reason }) => ({ code, reason }));
  expect(await verify(body(dave.uri), bobKey)).toEqual({
    code: GrpcStatus.NOT_FOUND,
    reason: 'VERIFY_FAILURE_HOOK_NOT_FOUND',
  });
  expect(await verify(body(bob.uri), orgKey)).toEqual({
    code: GrpcStatus.UNAUTHENTICATED,
    reason: 'VERIFY_FAILURE_SIGNATURE_MISMATCH',
  });
  expect(await verify(Buffer.from('not json'), bobKey)).toEqual({
    code: GrpcStatus.NOT_FOUND,
    reason: 'VERIFY_FAILURE_HOOK_NOT_FOUND',
  });
  // Found by its creator and genuinely signed, but not an envelope: read only after the signature.
  expect(await verify(Buffer.from(JSON.stringify({ created_by: bob.uri })), bobKey)).toEqual({
    code: GrpcStatus.INVALID_ARGUMENT,
    reason: 'VERIFY_FAILURE_PAYLOAD_MALFORMED',
  });
});

it('answers the legacy URL from the hook cache: a cached hook costs no database query, even with Postgres gone', async () => {
  const rawBody = legacyBody(bob.uri, 'cached', [bob.uri]);
  const verify = (key: string) => verifyLegacy(rawBody, key);
  // Once to be sure the hook is in the cache, then with the service cut off from Postgres:
  // no new connection to its database, and every connection of its pool ended (the cache's
  // listener, which is how it hears of changes, stays).
  expect(await verify(bobKey)).toMatchObject({ code: 0, userId: 'lg-bob' });
  // Another database of the same server: Postgres will not shut the current one off.
  const serverUrl = new URL(h.database.url);
  serverUrl.pathname = '/postgres';
  const server = new Client({ connectionString: serverUrl.toString() });
  await server.connect();
  try {
    await server.query(`ALTER DATABASE "${h.database.name}" ALLOW_CONNECTIONS false`);
    await server.query(
      "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND application_name = 'subscription'",
      [h.database.name],
    );
    expect(await verify(bobKey)).toMatchObject({ code: 0, userId: 'lg-bob' });
    // A forgery is refused on the same footing: its signature is checked against the cached key.
    expect(await verify(orgKey)).toMatchObject({
      code: GrpcStatus.UNAUTHENTICATED,
      reason: 'VERIFY_FAILURE_SIGNATURE_MISMATCH',
    });
  } finally {
    await server.query(`ALTER DATABASE "${h.database.name}" ALLOW_CONNECTIONS true`);
    await server.end();
  }
});

it('forgets a cached legacy hook the moment it changes', async () => {
  const repository = createWebhookRepository(pool);
  const row = await repository.findLegacyByCreator(bob.uri);
  const rawBody = legacyBody(bob.uri, 'gone');
  const verify = () => verifyLegacy(rawBody, bobKey).then(({ reason }) => reason);
  expect(await verify()).toBe('ok');
  await repository.update(row!.hookId, { state: 'removing' });
  try {
    await waitFor(async () => (await verify()) === 'VERIFY_FAILURE_HOOK_NOT_FOUND');
  } finally {
    await repository.update(row!.hookId, { state: 'active' });
  }
  await waitFor(async () => (await verify()) === 'ok');
});

it('retires the legacy subscriptions only once every user has their own webhook', async () => {
  const calendly = createCalendlyClient({ apiUrl: h.sim.url, authUrl: h.sim.url, log });
  const retire = () => retireLegacyWebhooks({ repository: createWebhookRepository(pool), connections, calendly, log });
  expect(await retire()).toEqual({ status: 'waiting', usersWithoutOwnWebhook: ['lg-admin', 'lg-bob'] });
  expect(await simSubscriptions(h, bob)).toHaveLength(1);

  // Reconcile moves a legacy user onto a webhook of their own; Ensure does it for the other.
  expect(await h.subscription.reconcile({ userId: 'lg-bob' })).toMatchObject({ recreated: 1 });
  await h.subscription.ensureUserWebhook({ userId: 'lg-admin' });
  expect(await retire()).toEqual({ status: 'retired', deleted: 2, failed: [] });

  const remaining = [...(await simSubscriptions(h, bob)), ...(await simSubscriptions(h, admin))];
  expect(remaining.map((subscription) => subscription.callback_url)).not.toContain(legacyUrl());
  const organizationWide = (await h.sim_('/_sim/webhook_subscriptions')) as { collection: { scope: string }[] };
  expect(organizationWide.collection.filter((subscription) => subscription.scope === 'organization')).toEqual([]);
  expect((await h.subscription.listUserWebhooks({ userId: 'lg-bob' })).webhooks.map((w) => w.legacy)).toEqual([false]);
});
