import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { eventsV1 } from '@calsync/proto';
import { backfillDurableName } from '../consumer/topology';
import { spawnService, type ServiceProcess } from '@calsync/service-kit/testing';
import { startCalendlyWorld, type CalendlyWorld, type SimUser } from '../../test/calendly-world';
import { createTestWorld, importCompleted, waitFor, type TestWorld } from '../../test/harness';

// The real process, built by `npm test` (or `npx tsc -p services/meetings/tsconfig.build.json`).
const entry = join(__dirname, '..', '..', 'dist', 'main.js');
const { BACKFILL_KIND_INITIAL_IMPORT } = eventsV1.BackfillKind;
const durable = 'meetings';

let world: TestWorld;
let calendly: CalendlyWorld;

beforeAll(async () => {
  if (!existsSync(entry)) throw new Error(`${entry} is missing: build services/meetings first`);
  world = await createTestWorld('meetings-import-redelivery');
  calendly = await startCalendlyWorld(world);
});

afterAll(async () => {
  await calendly?.stop();
  await world?.close();
});

async function importRow(requestId: string) {
  const { rows } = await world.sql.query<{ status: string; events: number; resumes: number }>(
    'SELECT status, events, resumes FROM imports WHERE request_id = $1',
    [requestId],
  );
  return rows[0];
}

const total = 60;
const window = { from: '2026-11-01T00:00:00Z', to: '2027-03-01T00:00:00Z' };

/** A connected user with `total` meetings, one an hour from 1 December, and a slow Calendly. */
async function userWithMeetings() {
  const userId = `user-${randomUUID()}`;
  const user = await calendly.connectedUser(userId);
  for (let index = 0; index < total; index += 10)
    await Promise.all(
      Array.from({ length: 10 }, (_, offset) =>
        calendly.book(
          user,
          `Guest ${index + offset}`,
          new Date(Date.UTC(2026, 11, 1) + (index + offset) * 3_600_000).toISOString(),
        ),
      ),
    );
  // Slow enough that the import is still going when the test steps in.
  await calendly.control('/faults', { latency: { api_ms: 25 } });
  return { userId, user };
}

/** Requests the user's import and waits until a few events are in: the Calendly requests made before it, and the request. */
async function importUnderWay(userId: string, user: SimUser) {
  const before = (await calendly.apiRequests(user)).requests;
  const request = await calendly.requestBackfill(userId, user, window, BACKFILL_KIND_INITIAL_IMPORT);
  await waitFor(async () => ((await importRow(request.requestId))?.events ?? 0) >= 5 || undefined, {
    what: 'the import to be under way',
  });
  return { request, before };
}

it('a second delivery of an import that is running waits for it instead of fetching the same pages again', async () => {
  const { userId, user } = await userWithMeetings();
  const env = world.env({ ...calendly.env, CONSUMER_DURABLE_NAME: durable, CONSUMER_ACK_WAIT_MS: '1000' });
  const service: ServiceProcess = await spawnService({ entry, env });
  try {
    const { request, before } = await importUnderWay(userId, user);
    // A stalled process (a long pause, a starved CPU) misses its ack wait: JetStream delivers the
    // message again, to the pull request the same process still has open.
    service.child.kill('SIGSTOP');
    try {
      await waitFor(
        async () =>
          (await world.jsm.consumers.info(world.names.backfillStream, backfillDurableName(durable))).num_redelivered >
            0 || undefined,
        { what: 'JetStream to deliver the import again', timeoutMs: 20_000 },
      );
    } finally {
      service.child.kill('SIGCONT');
    }
    await importCompleted(world, request.requestId, { timeoutMs: 60_000, lines: service.lines });
    await waitFor(
      async () => {
        const info = await world.jsm.consumers.info(world.names.backfillStream, backfillDurableName(durable));
        return info.num_ack_pending === 0 && info.num_pending === 0 ? true : undefined;
      },
      { what: 'the backfill message to be acknowledged' },
    );
    // Every page once: one list page, one invitee list per event; no second run of the same import.
    expect((await calendly.apiRequests(user)).requests - before).toBe(1 + total);
    expect(await importRow(request.requestId)).toMatchObject({ status: 'completed', events: total, resumes: 0 });
  } finally {
    expect(await service.stop()).toBe(0);
  }
}, 120_000);

it('an import whose lock is lost with its connection stops, and its next delivery continues from the checkpoint', async () => {
  const { userId, user } = await userWithMeetings();
  const env = world.env({
    ...calendly.env,
    CONSUMER_DURABLE_NAME: durable,
    CONSUMER_BACKOFF_MS: '200',
    CONSUMER_ACK_WAIT_MS: '5000',
  });
  const service: ServiceProcess = await spawnService({ entry, env });
  try {
    const { request, before } = await importUnderWay(userId, user);
    // Another instance could take the import now: this run must not go on beside it.
    const { rowCount } = await world.sql.query(
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND application_name = 'meetings-import-locks'`,
    );
    expect(rowCount).toBe(1);
    await importCompleted(world, request.requestId, { timeoutMs: 60_000, lines: service.lines });
    const finished = await importRow(request.requestId);
    expect(finished).toMatchObject({ status: 'completed', events: total, resumes: 1 });
    // It went on after the last finished event: at most the list page and the event in hand again.
    expect((await calendly.apiRequests(user)).requests - before).toBeLessThanOrEqual(1 + total + 2);
    expect(service.lines.some((line) => line.includes('import locks lost with their connection'))).toBe(true);
    const { rows } = await world.sql.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM meetings WHERE user_id = $1',
      [userId],
    );
    expect(rows[0]!.n).toBe(total);
  } finally {
    expect(await service.stop()).toBe(0);
  }
}, 120_000);
