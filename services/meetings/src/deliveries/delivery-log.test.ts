import { randomUUID } from 'node:crypto';
import { eventsV1, meetingsAdminV1, meetingsV1 } from '@calsync/proto';
import { grpcIdentities, GrpcStatus, type PromiseClient } from '@calsync/service-kit';
import { clientAs } from '@calsync/service-kit/testing';
import { fakeCalendlyAccount, toCalendlyEvent } from '../../test/calendly-fixtures';
import {
  createTestWorld,
  inboxReaches,
  readDeadLetters,
  startMeetings,
  waitFor,
  type RunningMeetings,
  type TestWorld,
} from '../../test/harness';

const { DeliveryOutcome } = meetingsV1;
type AdminClient = PromiseClient<typeof meetingsAdminV1.MeetingsAdminServiceService>;

let world: TestWorld;
let meetings: RunningMeetings;
let admin: AdminClient;
const alice = `alice-${randomUUID()}`;
const bob = `bob-${randomUUID()}`;
const aliceCal = fakeCalendlyAccount();
const bobCal = fakeCalendlyAccount();
const aliceFirst = aliceCal.book({ start: '2026-06-01T10:00:00Z' });
const aliceSecond = aliceCal.book({ start: '2026-06-02T10:00:00Z' });
const bobBooking = bobCal.book({ start: '2026-06-03T10:00:00Z' });
let malformedKey = '';

const logRows = async (userId?: string) =>
  (
    await world.sql.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM delivery_log ${userId ? 'WHERE user_id = $1' : ''}`,
      userId ? [userId] : [],
    )
  ).rows[0]!.n;

async function allOf(userId: string, pageSize: number): Promise<meetingsV1.DeliveryRecord[]> {
  const records: meetingsV1.DeliveryRecord[] = [];
  let cursor = '';
  do {
    const page = await meetings.client.listDeliveries({ userId, pageSize, cursor });
    records.push(...page.deliveries);
    cursor = page.nextCursor;
  } while (cursor);
  return records;
}

beforeAll(async () => {
  world = await createTestWorld('meetings-delivery-log');
  await world.declareEventsStream();
  meetings = await startMeetings(world);
  admin = await clientAs(
    grpcIdentities.operator,
    meetingsAdminV1.MeetingsAdminServiceService,
    `127.0.0.1:${meetings.app.ports.grpc}`,
  );

  await world.publish(alice, aliceCal.user.uri, aliceFirst.delivery);
  await world.publish(alice, aliceCal.user.uri, aliceSecond.delivery);
  await world.publish(bob, bobCal.user.uri, bobBooking.delivery);
  await inboxReaches(world, [alice, bob], 3);
  // Calendly retrying after JetStream's duplicate window: stored again, recognised by the inbox.
  const again = toCalendlyEvent(alice, aliceCal.user.uri, aliceFirst.delivery);
  await world.publishRaw(
    world.names.eventSubject(again.eventType),
    eventsV1.CalendlyEvent.encode(again).finish(),
    `late-retry-${again.deliveryKey}`,
  );
  // A body that is not JSON can never apply: dead-lettered at once.
  const broken = toCalendlyEvent(alice, aliceCal.user.uri, {
    ...aliceCal.book({ start: '2026-06-05T10:00:00Z' }).delivery,
    body: Buffer.from('{"event":"invitee.created","payload":'),
  });
  malformedKey = broken.deliveryKey;
  await world.publishRaw(
    world.names.eventSubject(broken.eventType),
    eventsV1.CalendlyEvent.encode(broken).finish(),
    broken.deliveryKey,
  );
  await waitFor(async () => ((await logRows(alice)) === 4 ? true : undefined), { what: "alice's 4 log rows" });
  await waitFor(async () => ((await readDeadLetters(world)).length === 1 ? true : undefined), {
    what: 'the dead letter',
  });
}, 60_000);

afterAll(async () => {
  admin?.close();
  await meetings?.stop();
  await world?.close();
});

it("shows a user their own deliveries, newest first, with each outcome and latency, and never another user's", async () => {
  const records = await allOf(alice, 0);
  expect(records.map((record) => [record.deliveryKey, record.outcome])).toEqual([
    [malformedKey, DeliveryOutcome.DELIVERY_OUTCOME_DEAD_LETTERED],
    [
      toCalendlyEvent(alice, aliceCal.user.uri, aliceFirst.delivery).deliveryKey,
      DeliveryOutcome.DELIVERY_OUTCOME_DUPLICATE,
    ],
    [
      toCalendlyEvent(alice, aliceCal.user.uri, aliceSecond.delivery).deliveryKey,
      DeliveryOutcome.DELIVERY_OUTCOME_APPLIED,
    ],
    [
      toCalendlyEvent(alice, aliceCal.user.uri, aliceFirst.delivery).deliveryKey,
      DeliveryOutcome.DELIVERY_OUTCOME_APPLIED,
    ],
  ]);
  for (const record of records) {
    expect(record.userId).toBe(alice);
    expect(record.eventType).toBe('invitee.created');
    expect(record.receivedAt).toBeInstanceOf(Date);
    expect(record.recordedAt!.getTime()).toBeGreaterThanOrEqual(record.receivedAt!.getTime());
    expect(record.latencyMs).toBe(record.recordedAt!.getTime() - record.receivedAt!.getTime());
  }
  // Nothing of the payload: not the invitee's email, not the body.
  expect(JSON.stringify(records)).not.toContain('@example.com');
  const bobs = await allOf(bob, 0);
  expect(bobs.map((record) => [record.userId, record.outcome])).toEqual([
    [bob, DeliveryOutcome.DELIVERY_OUTCOME_APPLIED],
  ]);
});

it('pages one delivery at a time through the cursor, without gaps or repeats', async () => {
  const whole = await allOf(alice, 0);
  const paged = await allOf(alice, 1);
  expect(paged).toEqual(whole);
});

it('does not log what a backfill imports: only received deliveries', async () => {
  const carol = `carol-${randomUUID()}`;
  const event = toCalendlyEvent(carol, aliceCal.user.uri, aliceCal.book({ start: '2026-06-06T10:00:00Z' }).delivery);
  // The same delivery without a receipt time (as the applier gets it from a backfill).
  const { receivedAt: _receivedAt, ...withoutReceipt } = event;
  await world.publishRaw(
    world.names.eventSubject(event.eventType),
    eventsV1.CalendlyEvent.encode(withoutReceipt).finish(),
    event.deliveryKey,
  );
  await inboxReaches(world, [carol], 1);
  expect(await logRows(carol)).toBe(0);
});

it.each([
  ['a page size over 100', { userId: alice, pageSize: 101, cursor: '' }, /page_size/],
  ['a negative page size', { userId: alice, pageSize: -1, cursor: '' }, /page_size/],
  ['a cursor it never handed out', { userId: alice, pageSize: 0, cursor: 'd1.abc' }, /cursor/],
  ['a cursor of another shape', { userId: alice, pageSize: 0, cursor: 'eyJ0IjoxfQ' }, /cursor/],
  ['a cursor of zero', { userId: alice, pageSize: 0, cursor: 'd1.0' }, /cursor/],
  ['no user', { userId: '', pageSize: 0, cursor: '' }, /user_id/],
])('refuses %s with INVALID_ARGUMENT and changes nothing', async (_label, request, message) => {
  const before = await logRows();
  await expect(meetings.client.listDeliveries(request)).rejects.toMatchObject({
    code: GrpcStatus.INVALID_ARGUMENT,
    details: expect.stringMatching(message),
  });
  expect(await logRows()).toBe(before);
});

describe('the operators’ delivery log', () => {
  it("lists one user's deliveries, or everyone's, paged", async () => {
    const alices = await admin.listDeliveryLog({ userId: alice, pageSize: 0, cursor: '' });
    expect(alices.deliveries.map((record) => record.userId)).toEqual([alice, alice, alice, alice]);
    expect(alices.nextCursor).toBe('');
    const first = await admin.listDeliveryLog({ userId: '', pageSize: 2, cursor: '' });
    expect(first.deliveries).toHaveLength(2);
    const rest = await admin.listDeliveryLog({ userId: '', pageSize: 200, cursor: first.nextCursor });
    const users = [...first.deliveries, ...rest.deliveries].map((record) => record.userId);
    expect(users.filter((user) => user === alice)).toHaveLength(4);
    expect(users.filter((user) => user === bob)).toHaveLength(1);
  });

  it.each([
    ['a page size over 200', { userId: '', pageSize: 201, cursor: '' }, /page_size/],
    ['a cursor it never handed out', { userId: '', pageSize: 0, cursor: 'x' }, /cursor/],
    ['a user id over 200 characters', { userId: 'u'.repeat(201), pageSize: 0, cursor: '' }, /user_id/],
  ])('refuses %s with INVALID_ARGUMENT', async (_label, request, message) => {
    await expect(admin.listDeliveryLog(request)).rejects.toMatchObject({
      code: GrpcStatus.INVALID_ARGUMENT,
      details: expect.stringMatching(message),
    });
  });

  it("refuses a caller with the gateway's certificate (the user's path), and one with a user's", async () => {
    for (const identity of [grpcIdentities.gateway, 'platform-user-42']) {
      const asOther = await clientAs(
        identity,
        meetingsAdminV1.MeetingsAdminServiceService,
        `127.0.0.1:${meetings.app.ports.grpc}`,
      );
      try {
        await expect(asOther.listDeliveryLog({ userId: alice, pageSize: 0, cursor: '' })).rejects.toMatchObject({
          code: GrpcStatus.PERMISSION_DENIED,
        });
      } finally {
        asOther.close();
      }
    }
  });
});
