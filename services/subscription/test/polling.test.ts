import { subscriptionV1 } from '@calsync/proto';
import {
  backfillRequests,
  bookAndReceive,
  disableAtSimulator,
  hookIdOf,
  simSubscriptions,
  startHarness,
  waitFor,
  type Harness,
  type SimUser,
} from './harness';

const { SyncMode, WebhookState } = subscriptionV1;
const day = 24 * 3600 * 1000;
const refusal = 'webhook_not_allowed: Please upgrade your Calendly account to Standard';

let h: Harness;

beforeAll(async () => {
  h = await startHarness('polling', {
    env: { POLL_INTERVAL_SECONDS: '1', POLL_FRESHNESS_SECONDS: '3', POLL_SWEEP_INTERVAL_SECONDS: '4' },
  });
});

afterAll(() => h?.stop());

const requestsOf = async (userId: string, kind: string) =>
  (await backfillRequests(h)).filter((request) => request.userId === userId && request.msgId.startsWith(`${kind}:`));

const slotOf = (msgId: string) => Number(msgId.slice(msgId.lastIndexOf(':') + 1));

const setPlan = (user: SimUser, plan: 'free' | 'standard') =>
  h.sim_(`/_sim/users/${user.uri.slice(user.uri.lastIndexOf('/') + 1)}`, { method: 'PATCH', body: { plan } });

/** Waits until the poller has requested `more` further near-window polls of `userId`: proof that it ran. */
async function pollsHappen(userId: string, more: number) {
  const before = (await requestsOf(userId, 'poll')).length;
  await waitFor(async () => (await requestsOf(userId, 'poll')).length >= before + more || undefined, {
    timeoutMs: 20_000,
    what: `${more} more polls of ${userId}`,
  });
}

describe('a user whose plan cannot have a webhook', () => {
  let fay: SimUser;

  beforeAll(async () => {
    fay = await h.connectWithToken('poll-fay', { plan: 'free' });
    // A second polled user: the witness that the poller keeps running once fay stops being polled.
    await h.connectWithToken('poll-witness', { plan: 'free' });
    await h.subscription.ensureUserWebhook({ userId: 'poll-witness' });
  });

  it('is connected in polling mode with Calendly’s reason, and no webhook', async () => {
    const first = await h.subscription.ensureUserWebhook({ userId: 'poll-fay' });
    expect(first).toMatchObject({ syncMode: SyncMode.SYNC_MODE_POLLING, syncModeReason: refusal, created: false });
    expect(first.webhook).toBeUndefined();
    const again = await h.subscription.ensureUserWebhook({ userId: 'poll-fay' });
    expect(again.syncModeSince).toEqual(first.syncModeSince);
    const listed = await h.subscription.listUserWebhooks({ userId: 'poll-fay' });
    expect(listed).toMatchObject({ syncMode: SyncMode.SYNC_MODE_POLLING, syncModeReason: refusal });
    // The refused attempt stays as the record of why.
    expect(listed.webhooks).toHaveLength(1);
    expect(listed.webhooks[0]).toMatchObject({ state: WebhookState.WEBHOOK_STATE_FAILED });
    expect(await simSubscriptions(h, fay)).toEqual([]);
  });

  it('is polled over the near window every interval and over the whole horizon every sweep, on a fixed phase', async () => {
    await waitFor(
      async () =>
        (await requestsOf('poll-fay', 'poll')).length >= 3 && (await requestsOf('poll-fay', 'sweep')).length >= 1
          ? true
          : undefined,
      { timeoutMs: 20_000, what: 'three polls and a sweep' },
    );
    const polls = await requestsOf('poll-fay', 'poll');
    const sweeps = await requestsOf('poll-fay', 'sweep');
    for (const poll of polls) {
      const at = poll.requestedAt!.getTime();
      expect(poll.calendlyUserUri).toBe(fay.uri);
      expect((poll.windowStart!.getTime() - at) / day).toBeCloseTo(-1, 1);
      expect((poll.windowEnd!.getTime() - at) / day).toBeCloseTo(14, 1);
    }
    for (const sweep of sweeps) {
      const at = sweep.requestedAt!.getTime();
      expect((sweep.windowStart!.getTime() - at) / day).toBeCloseTo(-7, 1);
      expect((sweep.windowEnd!.getTime() - at) / day).toBeCloseTo(730, 1);
    }
    // Every slot once, and all of them on the user's grid: one interval (or a multiple) apart.
    const slots = polls.map((poll) => slotOf(poll.msgId));
    expect(new Set(slots).size).toBe(slots.length);
    for (const slot of slots) expect((slot - slots[0]!) % 1000).toBe(0);
    const listed = await h.subscription.listUserWebhooks({ userId: 'poll-fay' });
    expect(listed.lastPolledAt).toBeDefined();
  });

  it('switches to a webhook once Calendly allows one, with one catch-up over the gap, and is no longer polled', async () => {
    await setPlan(fay, 'standard');
    const summary = await h.subscription.reconcile({ userId: 'poll-fay' });
    expect(summary).toMatchObject({ recreated: 1, catchUpsRequested: 1, polling: 0 });
    const listed = await h.subscription.listUserWebhooks({ userId: 'poll-fay' });
    expect(listed).toMatchObject({ syncMode: SyncMode.SYNC_MODE_WEBHOOK, syncModeReason: '' });
    const active = listed.webhooks.filter((hook) => hook.state === WebhookState.WEBHOOK_STATE_ACTIVE);
    expect(listed.webhooks).toHaveLength(1);
    expect(active).toHaveLength(1);
    expect(await simSubscriptions(h, fay)).toHaveLength(1);

    const [catchUp, ...more] = await requestsOf('poll-fay', 'catch-up');
    expect(more).toEqual([]);
    expect(catchUp!.msgId).toBe(`catch-up:${active[0]!.hookId}`);
    const at = catchUp!.requestedAt!.getTime();
    expect((catchUp!.windowStart!.getTime() - at) / day).toBeCloseTo(-7, 1);
    expect((catchUp!.windowEnd!.getTime() - at) / day).toBeCloseTo(730, 1);

    // Reconciling again changes nothing and asks for nothing more.
    expect(await h.subscription.reconcile({ userId: 'poll-fay' })).toMatchObject({ healthy: 1, catchUpsRequested: 0 });

    const pollsAtSwitch =
      (await requestsOf('poll-fay', 'poll')).length + (await requestsOf('poll-fay', 'sweep')).length;
    await pollsHappen('poll-witness', 3);
    const pollsAfter = (await requestsOf('poll-fay', 'poll')).length + (await requestsOf('poll-fay', 'sweep')).length;
    expect(pollsAfter).toBe(pollsAtSwitch);

    expect(await bookAndReceive(h, fay, hookIdOf(active[0]!.callbackUrl))).toMatchObject({
      outcome: 'ok',
      userId: 'poll-fay',
    });
  });

  it('goes back to polling, with a sweep over the gap right away, when Calendly refuses a new webhook', async () => {
    await setPlan(fay, 'free');
    await disableAtSimulator(h, fay);
    const sweepsBefore = (await requestsOf('poll-fay', 'sweep')).length;
    const switchedAt = Date.now();
    expect(await h.subscription.reconcile({ userId: 'poll-fay' })).toMatchObject({ polling: 1, failed: 0 });
    expect(await h.subscription.listUserWebhooks({ userId: 'poll-fay' })).toMatchObject({
      syncMode: SyncMode.SYNC_MODE_POLLING,
      syncModeReason: refusal,
    });
    const sweeps = await waitFor(
      async () => {
        const all = await requestsOf('poll-fay', 'sweep');
        return all.length > sweepsBefore ? all : undefined;
      },
      { timeoutMs: 10_000, what: 'the sweep after switching back' },
    );
    // Due at the switch, not at the user's next slot of the sweep period.
    expect(slotOf(sweeps[sweepsBefore]!.msgId)).toBeLessThan(switchedAt + 2_000);
  });

  it('stops polling a user who disconnects', async () => {
    await h.subscription.removeUserWebhooks({ userId: 'poll-fay' });
    expect(await h.subscription.listUserWebhooks({ userId: 'poll-fay' })).toMatchObject({
      syncMode: SyncMode.SYNC_MODE_UNSPECIFIED,
    });
    const before = (await requestsOf('poll-fay', 'poll')).length;
    await pollsHappen('poll-witness', 2);
    expect(await requestsOf('poll-fay', 'poll')).toHaveLength(before);
  });
});
