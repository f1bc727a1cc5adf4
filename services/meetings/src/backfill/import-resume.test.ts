import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { eventsV1 } from '@calsync/proto';
import { spawnService, type ServiceProcess } from '@calsync/service-kit/testing';
import { startCalendlyWorld, type CalendlyWorld } from '../../test/calendly-world';
import { createTestWorld, importCompleted, waitFor, type TestWorld } from '../../test/harness';

// The real process, built by `npm test` (or `npx tsc -p services/meetings/tsconfig.build.json`).
const entry = join(__dirname, '..', '..', 'dist', 'main.js');
const { BACKFILL_KIND_INITIAL_IMPORT } = eventsV1.BackfillKind;

let world: TestWorld;
let calendly: CalendlyWorld;

beforeAll(async () => {
  if (!existsSync(entry)) throw new Error(`${entry} is missing: build services/meetings first`);
  world = await createTestWorld('meetings-import-resume');
  calendly = await startCalendlyWorld(world);
});

afterAll(async () => {
  await calendly?.stop();
  await world?.close();
});

interface ImportRow {
  status: string;
  events: number;
  invitees: number;
  resumes: number;
  calendly_requests: number;
}

async function importRow(requestId: string): Promise<ImportRow | undefined> {
  const { rows } = await world.sql.query<ImportRow>(
    'SELECT status, events, invitees, resumes, calendly_requests FROM imports WHERE request_id = $1',
    [requestId],
  );
  return rows[0];
}

async function count(sql: string, params: unknown[]): Promise<number> {
  const { rows } = await world.sql.query<{ n: number }>(sql, params);
  return rows[0]!.n;
}

// The steps' own waits (30 s, 60 s, 60 s) name the one that stalls; jest's 60 s default would
// cut them short with a timeout that names none (it did once under a loaded CI run, at 68 s).
const testTimeoutMs = 180_000;

it(
  'continues a killed import from its checkpoint: fewer Calendly requests than starting over, nothing twice',
  async () => {
    const userId = `user-${randomUUID()}`;
    const user = await calendly.connectedUser(userId);
    const total = 150;
    for (let index = 0; index < total; index += 10)
      await Promise.all(
        Array.from({ length: Math.min(10, total - index) }, (_, offset) =>
          calendly.book(
            user,
            `Guest ${index + offset}`,
            new Date(Date.UTC(2026, 11, 1) + (index + offset) * 3_600_000).toISOString(),
          ),
        ),
      );
    const window = { from: '2026-11-01T00:00:00Z', to: '2027-03-01T00:00:00Z' };
    // Slow enough that the kill lands in the middle.
    await calendly.control('/faults', { latency: { api_ms: 25 } });

    const env = world.env({ ...calendly.env, CONSUMER_ACK_WAIT_MS: '1500', SHUTDOWN_TIMEOUT_MS: '5000' });
    const before = (await calendly.apiRequests(user)).requests;
    // The first instance declares the backfill stream the request goes on.
    const first: ServiceProcess = await spawnService({ entry, env });
    let atKill: ImportRow;
    let requestsAtKill: number;
    let request: eventsV1.BackfillRequested;
    try {
      request = await calendly.requestBackfill(userId, user, window, BACKFILL_KIND_INITIAL_IMPORT);
      await waitFor(async () => ((await importRow(request.requestId))?.events ?? 0) >= 40 || undefined, {
        what: '40 imported events',
        timeoutMs: 30_000,
      });
      await first.kill();
      atKill = (await importRow(request.requestId))!;
      requestsAtKill = (await calendly.apiRequests(user)).requests - before;
    } finally {
      await first.kill();
    }
    expect(first.child.signalCode).toBe('SIGKILL');
    expect(atKill.status).toBe('running');
    expect(atKill.events).toBeLessThan(total);

    const second = await spawnService({ entry, env });
    let resumedCost: number;
    let freshCost: number;
    try {
      await importCompleted(world, request.requestId, { timeoutMs: 60_000, lines: second.lines });
      resumedCost = (await calendly.apiRequests(user)).requests - before - requestsAtKill;

      // The baseline: the same window imported from zero (a new request) costs every page again.
      await calendly.control('/faults', { latency: { api_ms: 0 } });
      const beforeFresh = (await calendly.apiRequests(user)).requests;
      const fresh = await calendly.requestBackfill(userId, user, window, BACKFILL_KIND_INITIAL_IMPORT);
      await importCompleted(world, fresh.requestId, { timeoutMs: 60_000, lines: second.lines });
      freshCost = (await calendly.apiRequests(user)).requests - beforeFresh;
      await waitFor(async () => (await count('SELECT count(*)::int AS n FROM outbox', [])) === 0 || undefined, {
        what: 'the change feed to be published',
      });
    } finally {
      expect(await second.stop()).toBe(0);
    }

    // One list page of 100 and one of 50, and one invitee list per event.
    expect(freshCost).toBe(2 + total);
    expect(resumedCost).toBeLessThan(freshCost);
    // It went on after the last finished event: at most the page it was on and the event in hand again.
    expect(resumedCost).toBeLessThanOrEqual(freshCost - atKill.events + 2);

    const finished = (await importRow(request.requestId))!;
    expect(finished).toMatchObject({ status: 'completed', events: total, invitees: total, resumes: 1 });
    expect(await count('SELECT count(*)::int AS n FROM meetings WHERE user_id = $1', [userId])).toBe(total);
    expect(await count('SELECT count(*)::int AS n FROM invitees WHERE user_id = $1', [userId])).toBe(total);
    expect(
      await count('SELECT count(*)::int AS n FROM inbox WHERE user_id = $1 AND delivery_key LIKE $2', [
        userId,
        `backfill:${request.requestId}:%`,
      ]),
    ).toBe(total);
    // Exactly one MeetingChanged per meeting, across the kill and the second import.
    const subject = world.names.meetingsChangedSubject(userId);
    const feed = await world.jsm.streams.info(world.names.meetingsChangedStream, { subjects_filter: subject });
    expect(feed.state.subjects?.[subject]).toBe(total);
    const deadLetters = await world.jsm.streams.info(world.names.deadLetterStream);
    expect(deadLetters.state.messages).toBe(0);
  },
  testTimeoutMs,
);
