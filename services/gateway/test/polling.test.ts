import { subscriptionV1 } from '@calsync/proto';
import { clientAsAllowedCallers } from '@calsync/service-kit/testing';
import type { PromiseClient } from '@calsync/service-kit';
import { subscriptionCallers } from '@calsync/subscription/dist/grpc/subscription-service';
import { startGatewaySystem, waitFor, type DeliveryAttempt, type GatewaySystem, type SimUser } from './harness';

let system: GatewaySystem;
let subscription: PromiseClient<typeof subscriptionV1.SubscriptionServiceService>;

beforeAll(async () => {
  system = await startGatewaySystem('gwpoll', {
    // The free plan's tenth of this is still far more than a poll every second needs.
    sim: { apiRequestsPerUserPerMinute: 100_000 },
    subscriptionEnv: {
      POLL_INTERVAL_SECONDS: '1',
      POLL_FRESHNESS_SECONDS: '3',
      POLL_SWEEP_INTERVAL_SECONDS: '5',
      RECONCILE_INTERVAL_SECONDS: '1',
    },
  });
  subscription = await clientAsAllowedCallers(
    subscriptionV1.SubscriptionServiceService,
    system.subscriptionAddr,
    subscriptionCallers,
  );
}, 120_000);

afterAll(async () => {
  subscription?.close();
  await system?.stop();
});

interface Booking {
  scheduled_event: { uri: string };
  invitee: { uri: string };
}

interface MeetingView {
  scheduledEventUri: string;
  status: string;
  invitees: { uri: string; status: string }[];
}

let n = 0;
function bookSoon(host: SimUser): Promise<Booking> {
  n += 1;
  const start = new Date(Math.floor(Date.now() / 3_600_000) * 3_600_000 + (48 + n) * 3_600_000);
  return system.simCall<Booking>('/_sim/bookings', {
    user: host.uri,
    invitee: { name: `Guest ${n}`, email: `guest${n}@example.com` },
    start_time: start.toISOString(),
    end_time: new Date(start.getTime() + 1_800_000).toISOString(),
  });
}

async function meetingsOf(userId: string): Promise<MeetingView[]> {
  return (await system.api('/api/meetings?limit=100', { userId })).body.meetings as MeetingView[];
}

const meetingOf = async (userId: string, booking: Booking) =>
  (await meetingsOf(userId)).find((meeting) => meeting.scheduledEventUri === booking.scheduled_event.uri);

const deliveriesOf = async (booking: Booking) =>
  (await system.simCall<{ collection: DeliveryAttempt[] }>('/_sim/deliveries')).collection.filter((attempt) =>
    attempt.body.includes(booking.invitee.uri),
  );

it('syncs a free-plan user by polling, then by webhook once they upgrade, with nothing duplicated', async () => {
  const fay = await system.createSimUser('pollfay', { plan: 'free' });
  const before = await bookSoon(fay);
  const connected = await system.api('/api/calendly/token', {
    userId: 'user-fay',
    method: 'POST',
    body: { token: fay.personal_access_token },
  });
  expect(connected).toMatchObject({ status: 200, body: { connected: true } });
  expect(await subscription.listUserWebhooks({ userId: 'user-fay' })).toMatchObject({
    syncMode: subscriptionV1.SyncMode.SYNC_MODE_POLLING,
    syncModeReason: 'webhook_not_allowed: Please upgrade your Calendly account to Standard',
  });
  // The import on connect read Calendly once it brought this in; what is booked from now on
  // can only come by polling, since Calendly delivers nothing to a user without a webhook.
  await waitFor(() => meetingOf('user-fay', before), { timeoutMs: 30_000, what: 'the imported meeting' });

  const polled = await bookSoon(fay);
  await waitFor(() => meetingOf('user-fay', polled), { timeoutMs: 30_000, what: 'the meeting booked while polled' });
  await system.simCall('/_sim/invitees/cancel', { invitee: polled.invitee.uri, reason: 'seen by a poll' });
  const canceled = await waitFor(
    async () => {
      const meeting = await meetingOf('user-fay', polled);
      return meeting?.status === 'canceled' ? meeting : undefined;
    },
    { timeoutMs: 30_000, what: 'the cancel seen by polling' },
  );
  expect(canceled.invitees).toEqual([expect.objectContaining({ uri: polled.invitee.uri, status: 'canceled' })]);
  expect(await deliveriesOf(polled)).toEqual([]);

  await system.simCall(`/_sim/users/${fay.uuid}`, { plan: 'standard' }, 'PATCH');
  await waitFor(
    async () =>
      (await subscription.listUserWebhooks({ userId: 'user-fay' })).syncMode ===
        subscriptionV1.SyncMode.SYNC_MODE_WEBHOOK || undefined,
    { timeoutMs: 30_000, what: 'reconcile switching the user to a webhook' },
  );

  const pushed = await bookSoon(fay);
  const [delivered] = await waitFor(
    async () => {
      const attempts = (await deliveriesOf(pushed)).filter((attempt) => attempt.status === 200);
      return attempts.length > 0 ? attempts : undefined;
    },
    { timeoutMs: 30_000, what: 'the webhook delivery of the booking made after the upgrade' },
  );
  expect(delivered).toMatchObject({ event: 'invitee.created', outcome: 'delivered' });
  await waitFor(() => meetingOf('user-fay', pushed), { timeoutMs: 30_000, what: 'the meeting delivered by webhook' });

  const meetings = await meetingsOf('user-fay');
  expect(meetings.map((meeting) => meeting.scheduledEventUri).sort()).toEqual(
    [before, polled, pushed].map((booking) => booking.scheduled_event.uri).sort(),
  );
  for (const meeting of meetings) expect(meeting.invitees).toHaveLength(1);
});
