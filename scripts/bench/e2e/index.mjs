// Measures calsync's end-to-end latency: from the moment the Calendly simulator starts a
// delivery to the moment the meeting is visible through the gateway's GET /api/meetings, with
// every service running as its own process (the same processes `npm run dev` starts). Bookings
// arrive at a steady rate, spread over many connected users; a waiter per booking polls the
// user's meetings (filtered to that booking's start time) until it appears.
//
//   node scripts/bench/e2e/index.mjs [--users 50] [--rate 20] [--seconds 30] [--poll-ms 10]
//
// Uses DATABASE_URL / NATS_URL when set, else an embedded Postgres and a local nats-server.
// Needs a build first: npm run build
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import localInfra from '../../lib/local-infra.cjs';
import systemLib from '../../lib/system.cjs';
import devJwt from '../../lib/dev-jwt.cjs';
import bench from '../../lib/bench.cjs';

const { values } = parseArgs({
  options: {
    users: { type: 'string', default: '50' },
    rate: { type: 'string', default: '20' },
    seconds: { type: 'string', default: '30' },
    'poll-ms': { type: 'string', default: '10' },
  },
});
const userCount = Number(values.users);
const rate = Number(values.rate);
const seconds = Number(values.seconds);
const pollMs = Number(values['poll-ms']);
const rootDir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const say = (line) => process.stdout.write(`${line}\n`);

async function json(url, { method = 'GET', body, token } = {}) {
  const response = await fetch(url, {
    method,
    headers: {
      ...(body ? { 'content-type': 'application/json' } : {}),
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    body: body ? JSON.stringify(body) : undefined,
  });
  if (!response.ok) throw new Error(`${method} ${url}: ${response.status} ${await response.text()}`);
  return response.status === 204 ? null : response.json();
}

const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];

async function main() {
  bench.printBenchHeader(rootDir);
  const cleanup = bench.createCleanup();
  const dir = mkdtempSync(join(tmpdir(), 'calsync-bench-e2e-'));
  cleanup.add(() => rmSync(dir, { recursive: true, force: true }));
  try {
    let databaseUrl = process.env.DATABASE_URL;
    if (!databaseUrl) {
      const postgres = await localInfra.startEmbeddedPostgres({ dir: join(dir, 'postgres') });
      cleanup.add(postgres.stop);
      databaseUrl = postgres.url;
    }
    let natsUrl = process.env.NATS_URL;
    if (!natsUrl) {
      const nats = await localInfra.startLocalNats({ dir: join(dir, 'nats') });
      cleanup.add(nats.stop);
      natsUrl = nats.url;
    }
    const system = await systemLib.startSystem({
      rootDir,
      databaseUrl,
      natsUrl,
      natsSubjectPrefix: `bench${Date.now().toString(36)}`,
      logLevel: 'info',
    });
    cleanup.add(system.stop);
    const { gateway, simulator } = system.urls;

    say(`connecting ${userCount} users (personal tokens)...`);
    const users = [];
    for (let i = 0; i < userCount; i++) {
      const calendly = await json(`${simulator}/_sim/users`, {
        method: 'POST',
        body: { name: `Bench ${i}`, email: `bench${i}@example.test`, plan: 'standard' },
      });
      const token = devJwt.signDevJwt(`bench-user-${i}`, system.secrets.jwtSecret);
      await json(`${gateway}/api/calendly/token`, {
        method: 'POST',
        token,
        body: { token: calendly.personal_access_token },
      });
      users.push({ calendly, token });
    }

    say(`booking ${rate}/s for ${seconds} s...`);
    const total = rate * seconds;
    const visible = new Map(); // invitee uri -> ms when visible
    const waiters = [];
    const base = Date.now() + 24 * 3_600_000;
    const started = Date.now();
    for (let n = 0; n < total; n++) {
      const due = started + (n * 1000) / rate;
      const wait = due - Date.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      const user = users[n % users.length];
      const start = new Date(base + n * 60_000);
      const booking = await json(`${simulator}/_sim/bookings`, {
        method: 'POST',
        body: {
          user: user.calendly.uri,
          invitee: { name: `Invitee ${n}`, email: `invitee${n}@example.test` },
          start_time: start.toISOString(),
          end_time: new Date(start.getTime() + 1_800_000).toISOString(),
        },
      });
      const query = `from=${encodeURIComponent(start.toISOString())}&to=${encodeURIComponent(new Date(start.getTime() + 1).toISOString())}`;
      waiters.push(
        (async () => {
          const giveUp = Date.now() + 60_000;
          for (;;) {
            const page = await json(`${gateway}/api/meetings?${query}`, { token: user.token });
            if (page.meetings.some((m) => m.invitees.some((i) => i.uri === booking.invitee.uri))) {
              visible.set(booking.invitee.uri, Date.now());
              return;
            }
            if (Date.now() > giveUp) throw new Error(`booking ${n} never became visible`);
            await new Promise((resolve) => setTimeout(resolve, pollMs));
          }
        })(),
      );
    }
    const achievedRate = total / ((Date.now() - started) / 1000);
    await Promise.all(waiters);

    const deliveries = await json(`${simulator}/_sim/deliveries?outcome=delivered&event=invitee.created`);
    const latencies = [];
    for (const attempt of deliveries.collection) {
      const body = typeof attempt.body === 'string' ? JSON.parse(attempt.body) : attempt.body;
      const shownAt = visible.get(body?.payload?.uri);
      if (shownAt !== undefined) latencies.push(shownAt - new Date(attempt.started_at).getTime());
    }
    latencies.sort((a, b) => a - b);
    if (latencies.length !== total) throw new Error(`matched ${latencies.length} of ${total} deliveries`);
    say('');
    say(`end-to-end latency, simulator delivery start -> visible via GET /api/meetings`);
    say(`  bookings        ${total} over ${userCount} users at ${achievedRate.toFixed(1)}/s (asked ${rate}/s)`);
    say(`  p50             ${percentile(latencies, 50)} ms`);
    say(`  p90             ${percentile(latencies, 90)} ms`);
    say(`  p99             ${percentile(latencies, 99)} ms`);
    say(`  max             ${latencies[latencies.length - 1]} ms`);
    say(`  poll interval   ${pollMs} ms (adds up to that much to each figure)`);
    say(
      `  load average    ${loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')} on ${(await import('node:os')).cpus().length} cores`,
    );
  } finally {
    await cleanup.run();
  }
}

main().then(
  () => process.exit(0),
  (error) => {
    process.stderr.write(`bench failed: ${error.stack ?? error}\n`);
    process.exit(1);
  },
);
