// The guarantee under faults: while 20 users' Calendly accounts change, the meetings consumer is
// killed, nats-server restarts on its store, the services' Postgres connections are terminated
// and the gateway is killed; afterwards every user has exactly the simulator's meetings, in the
// simulator's state, and no process died except those the test killed.
import { createSimUser, simControl } from '@calsync/calendly-sim/testing';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'pg';
import { createTestDatabase, type TestDatabase } from '@calsync/service-kit/testing';
import { eventually, http, inBatches, rootDir } from './system-harness';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { startSystem } = require('../lib/system.cjs') as typeof import('../lib/system.cjs');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { signDevJwt } = require('../lib/dev-jwt.cjs') as typeof import('../lib/dev-jwt.cjs');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { startLocalNats, freePort } = require('../lib/local-infra.cjs') as {
  freePort(): Promise<number>;
  startLocalNats(options: { dir: string; port?: number }): Promise<{ url: string; stop(): Promise<void> }>;
};

const userCount = 20;
/** Rounds of changes while each fault lands and after it (a booking each, every other round a cancellation). */
const roundsPerFault = 3;
/** After the last fault, every user's meetings match the simulator within this bound. */
const recoveryBoundMs = 30_000;
const hour = 3_600_000;

type System = Awaited<ReturnType<typeof startSystem>>;
interface User {
  token: string;
  calendlyUri: string;
  /** scheduled event uri -> the status the simulator holds */
  truth: Map<string, string>;
}

const natsDir = mkdtempSync(join(tmpdir(), 'calsync-chaos-nats-'));
let nats: { url: string; stop(): Promise<void> };
let natsPort: number;
let database: TestDatabase;
let system: System;
const lines: string[] = [];
const users: User[] = [];

beforeAll(async () => {
  natsPort = await freePort();
  nats = await startLocalNats({ dir: natsDir, port: natsPort });
  database = await createTestDatabase('chaos');
  system = await startSystem({
    rootDir,
    databaseUrl: database.url,
    natsUrl: nats.url,
    onLine: (service, line) => lines.push(`${service} ${line}`),
    // Calendly retries a refused delivery after 30 s; 1 s keeps the measured recovery ours.
    extraEnv: { 'calendly-sim': { SIM_RETRY_BASE_MS: '1000' } },
  });
}, 120_000);

afterAll(async () => {
  await system?.stop();
  await nats?.stop();
  await database?.drop();
  rmSync(natsDir, { recursive: true, force: true });
});

const sim = <T>(path: string, body: unknown): Promise<T> => simControl<T>(system.urls.simulator, 'POST', path, body);

async function connectUsers(): Promise<void> {
  await inBatches(
    Array.from({ length: userCount }, (_, i) => i),
    5,
    async (i) => {
      const calendly = await createSimUser(system.urls.simulator, {
        name: `Chaos ${i}`,
        email: `chaos${i}@example.test`,
        organization: `Chaos org ${i}`,
        plan: 'standard',
      });
      const token = signDevJwt(`chaos-user-${i}`, system.secrets.jwtSecret);
      await http(`${system.urls.gateway}/api/calendly/token`, {
        method: 'POST',
        token,
        body: { token: calendly.personal_access_token },
      });
      users[i] = { token, calendlyUri: calendly.uri, truth: new Map() };
    },
  );
}

/** One round of changes for every user: a booking each, and every other round a cancellation. */
async function changeRound(round: number): Promise<void> {
  await inBatches(users, 5, async (user, index) => {
    const start = new Date(Math.ceil(Date.now() / hour) * hour + 24 * hour + (index * 40 + round) * 30 * 60_000);
    const booked = await sim<{ scheduled_event: { uri: string }; invitee: { uri: string } }>('/_sim/bookings', {
      user: user.calendlyUri,
      invitee: { name: `Guest ${round}`, email: `guest${index}-${round}@example.test` },
      start_time: start.toISOString(),
      end_time: new Date(start.getTime() + 30 * 60_000).toISOString(),
    });
    user.truth.set(booked.scheduled_event.uri, 'active');
    if (round % 2 === 1) {
      await sim('/_sim/invitees/cancel', { invitee: booked.invitee.uri, reason: 'chaos', canceler_type: 'host' });
      user.truth.set(booked.scheduled_event.uri, 'canceled');
    }
  });
}

async function terminatePostgresConnections(): Promise<number> {
  const admin = new Client({ connectionString: process.env.CALSYNC_TEST_DATABASE_URL });
  await admin.connect();
  try {
    const result = await admin.query(
      'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()',
      [database.name],
    );
    return result.rowCount ?? 0;
  } finally {
    await admin.end();
  }
}

async function meetingsOf(user: User): Promise<{ scheduledEventUri: string; status: string }[]> {
  const all: { scheduledEventUri: string; status: string }[] = [];
  let cursor: string | null = null;
  do {
    const query: string = cursor ? `&cursor=${encodeURIComponent(cursor)}` : '';
    const page = await http<{ meetings: { scheduledEventUri: string; status: string }[]; nextCursor: string | null }>(
      `${system.urls.gateway}/api/meetings?limit=100${query}`,
      { token: user.token },
    );
    all.push(...page.body.meetings);
    cursor = page.body.nextCursor;
  } while (cursor);
  return all;
}

/** Lost, duplicated and wrong meetings of one user against the simulator's truth. */
async function differences(user: User): Promise<{ lost: number; duplicated: number; wrong: number; foreign: number }> {
  const seen = new Map<string, number>();
  let wrong = 0;
  let foreign = 0;
  for (const meeting of await meetingsOf(user)) {
    seen.set(meeting.scheduledEventUri, (seen.get(meeting.scheduledEventUri) ?? 0) + 1);
    const expected = user.truth.get(meeting.scheduledEventUri);
    if (expected === undefined) foreign++;
    else if (expected !== meeting.status) wrong++;
  }
  const lost = [...user.truth.keys()].filter((uri) => !seen.has(uri)).length;
  const duplicated = [...seen.values()].filter((count) => count > 1).length;
  return { lost, duplicated, wrong, foreign };
}

test(`${userCount} users' meetings survive a killed consumer, a NATS restart, dropped Postgres connections and a killed gateway`, async () => {
  await connectUsers();
  const running = { ...system.processes };
  const crash = async (service: string) => {
    running[service] = await system.restart(service, { kill: true });
  };
  const faults: [string, () => Promise<unknown>][] = [
    ['meetings killed', () => crash('meetings')],
    [
      'nats-server restarted on its store',
      async () => {
        await nats.stop();
        nats = await startLocalNats({ dir: natsDir, port: natsPort });
      },
    ],
    ['Postgres connections terminated', terminatePostgresConnections],
    ['gateway killed', () => crash('gateway')],
  ];
  let round = 0;
  const injected: string[] = [];
  for (const [name, inject] of faults) {
    // The fault lands while a round of changes is being delivered.
    const [, outcome] = await Promise.all([changeRound(round++), inject()]);
    injected.push(typeof outcome === 'number' ? `${name} (${outcome})` : name);
    for (let more = 1; more < roundsPerFault; more++) await changeRound(round++);
  }
  await changeRound(round++);
  const lastFault = Date.now();

  const totals = { lost: 0, duplicated: 0, wrong: 0, foreign: 0 };
  await eventually(
    async () => {
      const all = await inBatches(users, 5, differences);
      for (const key of Object.keys(totals) as (keyof typeof totals)[])
        totals[key] = all.reduce((sum, d) => sum + d[key], 0);
      expect(totals).toEqual({ lost: 0, duplicated: 0, wrong: 0, foreign: 0 });
    },
    { timeoutMs: recoveryBoundMs, intervalMs: 1_000 },
  );
  const recoveredMs = Date.now() - lastFault;
  const changes = userCount * (round + Math.floor(round / 2));
  console.log(
    `chaos: ${changes} changes over ${userCount} users, consistent ${recoveredMs} ms after the last round; injected: ${injected.join(', ')}`,
  );

  // Only the processes the test killed went away: every service still runs, none started twice.
  const exited = Object.entries(running).filter(
    ([, service]) => service.child.exitCode !== null || service.child.signalCode !== null,
  );
  expect(exited.map(([name]) => name)).toEqual([]);
  const readyLines = (service: string) =>
    lines.filter((line) => line.startsWith(`${service} `) && line.includes('"msg":"ready"')).length;
  expect({
    identity: readyLines('identity'),
    subscription: readyLines('subscription'),
    meetings: readyLines('meetings'),
    gateway: readyLines('gateway'),
  }).toEqual({ identity: 1, subscription: 1, meetings: 2, gateway: 2 });
  expect(lines.filter((line) => /Unhandled|uncaught|Emitted 'error'/i.test(line))).toEqual([]);
}, 170_000);
