import { randomUUID } from 'node:crypto';
import { eventsV1, meetingsV1 } from '@calsync/proto';
import { fakeCalendlyAccount } from '../../test/calendly-fixtures';
import { startCalendlyWorld, type CalendlyWorld, type SimUser } from '../../test/calendly-world';
import {
  allMeetings,
  createTestWorld,
  importCompleted,
  inboxReaches,
  startMeetings,
  waitFor,
  type RunningMeetings,
  type TestWorld,
} from '../../test/harness';

const { BACKFILL_KIND_INITIAL_IMPORT } = eventsV1.BackfillKind;
const window = { from: '2026-12-01T00:00:00Z', to: '2027-01-01T00:00:00Z' };
// Calendly's windows are a minute: this test waits for one to reset.
jest.setTimeout(150_000);

let world: TestWorld;
let calendly: CalendlyWorld;
let meetings: RunningMeetings;

beforeAll(async () => {
  world = await createTestWorld('meetings-import-rate');
  calendly = await startCalendlyWorld(world);
  // A small per-user budget, so an import of a few dozen events meets it.
  await calendly.control('/settings', { apiRequestsPerUserPerMinute: 30 });
  meetings = await startMeetings(world, {
    ...calendly.env,
    IMPORT_CONCURRENCY: '2',
    IMPORT_RATE_RESERVE_PERCENT: '20',
  });
});

afterAll(async () => {
  await meetings?.stop();
  await calendly?.stop();
  await world?.close();
});

async function importRow(requestId: string) {
  const { rows } = await world.sql.query<{ status: string; paused_until: Date | null; events: number }>(
    'SELECT status, paused_until, events FROM imports WHERE request_id = $1',
    [requestId],
  );
  return rows[0];
}

async function userWithEvents(userId: string, events: number): Promise<SimUser> {
  const user = await calendly.connectedUser(userId);
  for (let index = 0; index < events; index++)
    await calendly.book(user, `Guest ${index}`, new Date(Date.UTC(2026, 11, 2) + index * 3_600_000).toISOString());
  return user;
}

it("paces each user's import to Calendly's headers, waits out a 429, and never holds up other users' deliveries", async () => {
  // P's import needs 41 calls (a list page and 40 invitee lists): more than a window holds.
  const pUserId = `user-${randomUUID()}`;
  const p = await userWithEvents(pUserId, 40);
  // Q's budget is spent elsewhere (as another of calsync's calls could): its import meets a 429.
  const qUserId = `user-${randomUUID()}`;
  const q = await userWithEvents(qUserId, 5);
  for (let used = (await calendly.apiRequests(q)).requests; used < 30; used++) {
    const answer = await fetch(`${calendly.sim.url}/users/me`, {
      headers: { authorization: `Bearer ${q.personal_access_token}` },
    });
    expect(answer.status).toBe(200);
  }

  const pImport = await calendly.requestBackfill(pUserId, p, window, BACKFILL_KIND_INITIAL_IMPORT);
  const qImport = await calendly.requestBackfill(qUserId, q, window, BACKFILL_KIND_INITIAL_IMPORT);
  const paused = async (requestId: string) => {
    const row = await importRow(requestId);
    return row?.paused_until && row.paused_until.getTime() > Date.now() ? row : undefined;
  };
  const pPaused = await waitFor(() => paused(pImport.requestId), { what: "P's import to pause", timeoutMs: 30_000 });
  await waitFor(() => paused(qImport.requestId), { what: "Q's import to wait for its window", timeoutMs: 30_000 });
  // P stopped short of the limit, leaving the reserve (20% of 30) unspent, and was never refused.
  expect(pPaused.events).toBeGreaterThan(0);
  expect(pPaused.events).toBeLessThan(40);
  expect(await calendly.apiRequests(p)).toMatchObject({ rate_limited: 0 });
  expect((await calendly.apiRequests(p)).requests).toBeLessThanOrEqual(30 - 6);
  expect((await calendly.apiRequests(q)).rate_limited).toBeGreaterThanOrEqual(1);

  // The connection's sync state shows the wait.
  const state = await meetings.client.getImportState({ userId: pUserId });
  expect(state.import).toMatchObject({
    requestId: pImport.requestId,
    status: meetingsV1.ImportStatus.IMPORT_STATUS_RUNNING,
    eventsImported: pPaused.events,
    pausedUntil: expect.any(Date),
  });

  // Meanwhile another user's webhook deliveries go straight through.
  const rUserId = `user-${randomUUID()}`;
  const r = fakeCalendlyAccount();
  const deliveries = Array.from({ length: 20 }, (_, index) =>
    r.book({ start: new Date(Date.UTC(2026, 11, 10) + index * 3_600_000).toISOString() }),
  );
  await Promise.all(deliveries.map((booking) => world.publish(rUserId, r.user.uri, booking.delivery)));
  await inboxReaches(world, [rUserId], deliveries.length, 15_000);
  expect((await importRow(pImport.requestId))?.status).toBe('running');
  expect((await importRow(qImport.requestId))?.status).toBe('running');

  // Once their windows reset, both imports finish.
  for (const requestId of [pImport.requestId, qImport.requestId])
    await importCompleted(world, requestId, { timeoutMs: 120_000 });
  expect(await allMeetings(meetings.client, pUserId)).toHaveLength(40);
  expect(await allMeetings(meetings.client, qUserId)).toHaveLength(5);
  expect((await calendly.apiRequests(p)).rate_limited).toBe(0);
});

it('answers INVALID_ARGUMENT for an import state without a user, and nothing for a user without an import', async () => {
  await expect(meetings.client.getImportState({ userId: '' })).rejects.toMatchObject({ code: 3 });
  await expect(meetings.client.getImportState({ userId: 'x'.repeat(201) })).rejects.toMatchObject({ code: 3 });
  expect((await meetings.client.getImportState({ userId: `user-${randomUUID()}` })).import).toBeUndefined();
});
