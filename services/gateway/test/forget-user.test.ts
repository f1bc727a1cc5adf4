import { randomUUID } from 'node:crypto';
import { identityV1, meetingsV1, subscriptionV1 } from '@calsync/proto';
import { grpcIdentities } from '@calsync/service-kit';
import { clientAs, testNatsUrl } from '@calsync/service-kit/testing';
import { connect, type JetStreamManager, type NatsConnection } from 'nats';
import { Client } from 'pg';
import {
  startGatewaySystem,
  waitFor,
  type GatewaySystem,
  type SimUser,
  deliveriesOf,
  publishUnreadable,
} from './harness';

// Two users with everything calsync can hold of them: meetings, deliveries, a dead letter,
// change-feed messages, an initial import. One asks to be forgotten; the other must not notice.
let system: GatewaySystem;
let nc: NatsConnection;
let jsm: JetStreamManager;
let sql: Client;
const forgotten = `user-forget-${randomUUID()}`;
const kept = `user-keep-${randomUUID()}`;
const calendly: Record<string, SimUser & { email: string }> = {};
const bookings: Record<string, { scheduled_event: { uri: string }; invitee: { uri: string } }[]> = {};
const inviteeNumbers: Record<string, number[]> = { [forgotten]: [1, 2], [kept]: [3, 4] };

/** Everything that identifies `userId` or their Calendly account, as text and as stored bytes. */
function traces(userId: string): string[] {
  return [
    userId,
    calendly[userId]!.uri,
    calendly[userId]!.email,
    ...bookings[userId]!.flatMap((booking) => [booking.scheduled_event.uri, booking.invitee.uri]),
    ...inviteeNumbers[userId]!.map((n) => `invitee${n}@example.com`),
  ];
}

/** Per table of every schema of the database (whatever tables exist then), the rows that mention `userId`. */
async function rowsMentioning(userId: string): Promise<Record<string, number>> {
  const needles = traces(userId);
  // Text columns show as themselves; bytea (e.g. an encoded message) as hex.
  const patterns = needles.flatMap((needle) => [`%${needle}%`, `%${Buffer.from(needle).toString('hex')}%`]);
  const { rows: tables } = await sql.query<{ schema: string; table: string }>(
    `SELECT table_schema AS schema, table_name AS table FROM information_schema.tables
     WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')
     ORDER BY 1, 2`,
  );
  expect(tables.map((table) => table.schema)).toEqual(expect.arrayContaining(['identity', 'subscription', 'meetings']));
  const found: Record<string, number> = {};
  for (const { schema, table } of tables) {
    const name = `"${schema}"."${table}"`;
    const { rows } = await sql.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM ${name} AS t WHERE row_to_json(t)::text ILIKE ANY($1)`,
      [patterns],
    );
    found[`${schema}.${table}`] = rows[0]!.n;
  }
  return found;
}

/** Per stream of this system's prefix (whatever streams exist then), the messages that mention `userId`. */
async function messagesMentioning(userId: string): Promise<Record<string, number>> {
  const needles = traces(userId).map((needle) => Buffer.from(needle));
  const found: Record<string, number> = {};
  const prefix = system.names.eventsStream.replace(/_EVENTS$/, '_');
  for await (const info of jsm.streams.list()) {
    if (!info.config.name.startsWith(prefix)) continue;
    let count = 0;
    for (let seq = info.state.first_seq; info.state.messages > 0 && seq <= info.state.last_seq; seq++) {
      const message = await jsm.streams.getMessage(info.config.name, { seq }).catch(() => undefined);
      if (!message) continue;
      const bytes = Buffer.concat([Buffer.from(message.subject), Buffer.from(message.data)]);
      // A subject carries the user as a token: percent-encoded where needed, so look for it too.
      if (needles.some((needle) => bytes.includes(needle)) || message.subject.endsWith(`.${userId}`)) count++;
    }
    found[info.config.name] = count;
  }
  return found;
}

const nonZero = (counts: Record<string, number>) =>
  Object.fromEntries(Object.entries(counts).filter(([, count]) => count > 0));

async function outboxEmpty(): Promise<true | undefined> {
  const { rows } = await sql.query<{ n: number }>('SELECT count(*)::int AS n FROM meetings.outbox');
  return rows[0]!.n === 0 || undefined;
}

beforeAll(async () => {
  system = await startGatewaySystem('gwforget');
  nc = await connect({ servers: testNatsUrl() });
  jsm = await nc.jetstreamManager();
  sql = new Client({ connectionString: system.databaseUrl });
  await sql.connect();
  for (const userId of [forgotten, kept]) {
    calendly[userId] = (await system.connectWithToken(userId)) as SimUser & { email: string };
    bookings[userId] = [];
    for (const n of inviteeNumbers[userId]!) bookings[userId].push(await system.book(calendly[userId]!, n));
    await publishUnreadable(system, nc, userId, calendly[userId]!);
  }
  for (const userId of [forgotten, kept]) {
    await waitFor(
      async () => {
        const outcomes = (await deliveriesOf(system, userId)).map((delivery) => delivery.outcome).sort();
        return outcomes.join() === 'applied,applied,dead_lettered' || undefined;
      },
      { what: `the deliveries of ${userId}`, timeoutMs: 30_000 },
    );
    await waitFor(
      async () => {
        const info = await jsm.streams.info(system.names.meetingsChangedStream, {
          subjects_filter: system.names.meetingsChangedSubject(userId),
        });
        return (info.state.subjects?.[system.names.meetingsChangedSubject(userId)] ?? 0) >= 2 || undefined;
      },
      { what: `the change feed of ${userId}` },
    );
  }
  await waitFor(outboxEmpty, { what: 'the outbox relayed' });
}, 120_000);

afterAll(async () => {
  await sql?.end();
  await nc?.close();
  await system?.stop();
});

describe('DELETE /api/calendly/connection?purge=true', () => {
  it.each(['?purge=yes', '?purge=1', '?purge=true&purge=true', '?purge=true&everything=true', '?forget=true'])(
    'answers 400 to %s and changes nothing',
    async (query) => {
      const before = await rowsMentioning(forgotten);
      const answer = await system.api(`/api/calendly/connection${query}`, { userId: forgotten, method: 'DELETE' });
      expect(answer.status).toBe(400);
      expect(answer.body).toMatchObject({ error: 'invalid_request' });
      expect((await system.api('/api/calendly/connection', { userId: forgotten })).body.connected).toBe(true);
      expect(await rowsMentioning(forgotten)).toEqual(before);
    },
  );

  it("forgets the user in every table of every service and every stream, and leaves the other user's data whole", async () => {
    // The scan finds both users everywhere they are kept: it can see what it looks for.
    const rowsBefore = await rowsMentioning(forgotten);
    expect(Object.keys(nonZero(rowsBefore))).toEqual(
      expect.arrayContaining([
        'identity.connections',
        'subscription.webhooks',
        'subscription.initial_imports',
        'meetings.meetings',
        'meetings.invitees',
        'meetings.inbox',
        'meetings.delivery_log',
      ]),
    );
    const messagesBefore = await messagesMentioning(forgotten);
    expect(Object.keys(nonZero(messagesBefore)).sort()).toEqual(
      [
        system.names.eventsStream,
        system.names.backfillStream,
        system.names.deadLetterStream,
        system.names.meetingsChangedStream,
      ].sort(),
    );
    const keptRows = await rowsMentioning(kept);
    const keptMessages = await messagesMentioning(kept);
    const keptDeliveries = await deliveriesOf(system, kept);
    const keptMeetings = await system.api('/api/meetings', { userId: kept });

    const answer = await system.api('/api/calendly/connection?purge=true', { userId: forgotten, method: 'DELETE' });
    expect(answer.status).toBe(204);

    expect(nonZero(await rowsMentioning(forgotten))).toEqual({});
    expect(nonZero(await messagesMentioning(forgotten))).toEqual({});
    expect((await system.api('/api/calendly/connection', { userId: forgotten })).body.connected).toBe(false);
    expect((await system.api('/api/meetings', { userId: forgotten })).body.meetings).toEqual([]);
    expect(await deliveriesOf(system, forgotten)).toEqual([]);
    // Their webhook is gone at Calendly too; the other user's is not.
    const hooks = async (user: SimUser) =>
      (
        await system.simCall<{ collection: unknown[] }>(
          `/_sim/webhook_subscriptions?user=${encodeURIComponent(user.uri)}&state=active`,
        )
      ).collection.length;
    expect(await hooks(calendly[forgotten]!)).toBe(0);
    expect(await hooks(calendly[kept]!)).toBe(1);

    expect(await rowsMentioning(kept)).toEqual(keptRows);
    expect(await messagesMentioning(kept)).toEqual(keptMessages);
    expect(await deliveriesOf(system, kept)).toEqual(keptDeliveries);
    expect(await system.api('/api/meetings', { userId: kept })).toMatchObject({
      status: 200,
      body: keptMeetings.body,
    });
    expect((await system.api('/api/calendly/connection', { userId: kept })).body.connected).toBe(true);

    // Asking again (a retry after a lost answer) changes nothing and succeeds.
    const again = await system.api('/api/calendly/connection?purge=true', { userId: forgotten, method: 'DELETE' });
    expect(again.status).toBe(204);
    expect(nonZero(await rowsMentioning(forgotten))).toEqual({});
    expect(await rowsMentioning(kept)).toEqual(keptRows);
  });

  it('succeeds for a user calsync never knew, changing nothing', async () => {
    const keptRows = await rowsMentioning(kept);
    const keptMessages = await messagesMentioning(kept);
    const stranger = `user-never-${randomUUID()}`;
    expect(
      (await system.api('/api/calendly/connection?purge=true', { userId: stranger, method: 'DELETE' })).status,
    ).toBe(204);
    expect(await rowsMentioning(kept)).toEqual(keptRows);
    expect(await messagesMentioning(kept)).toEqual(keptMessages);
  });

  it('lets an operator purge a user in each service, idempotently, and refuses anyone else', async () => {
    const stranger = `user-never-${randomUUID()}`;
    const identity = await clientAs(
      grpcIdentities.operator,
      identityV1.IdentityServiceService,
      system.addresses.identity,
    );
    const subscription = await clientAs(
      grpcIdentities.operator,
      subscriptionV1.SubscriptionServiceService,
      system.addresses.subscription,
    );
    const meetings = await clientAs(
      grpcIdentities.operator,
      meetingsV1.MeetingsServiceService,
      system.addresses.meetings,
    );
    const asMeetings = await clientAs(
      grpcIdentities.meetings,
      identityV1.IdentityServiceService,
      system.addresses.identity,
    );
    try {
      for (const userId of [forgotten, stranger]) {
        expect(await subscription.purgeUser({ userId })).toEqual({ rowsDeleted: 0 });
        expect(await identity.purgeUser({ userId })).toEqual({ rowsDeleted: 0 });
        expect(await meetings.purgeUser({ userId })).toEqual({ rowsDeleted: 0, messagesDeleted: 0 });
      }
      await expect(meetings.purgeUser({ userId: '' })).rejects.toMatchObject({ code: 3 });
      await expect(identity.purgeUser({ userId: 'x'.repeat(201) })).rejects.toMatchObject({ code: 3 });
      await expect(subscription.purgeUser({ userId: '' })).rejects.toMatchObject({ code: 3 });
      await expect(asMeetings.purgeUser({ userId: kept })).rejects.toMatchObject({ code: 7 });
      expect((await system.api('/api/calendly/connection', { userId: kept })).body.connected).toBe(true);
    } finally {
      for (const client of [identity, subscription, meetings, asMeetings]) client.close();
    }
  });
});
