// Import on connect at scale: how many users a minute calsync imports when they connect, and
// what each import costs in Calendly requests against the per-user rate limit, with every
// service as its own process and the simulator as Calendly.
//
//   node scripts/bench/import/index.mjs [--users 1000] [--meetings 200] [--connect-concurrency 16]
//                                       [--import-concurrency 4]
//
// Seeding books `--meetings` meetings (one invitee each, spread over the next 60 days, inside
// the import window) for each of `--users` simulated Calendly users through the simulator's
// control API; nobody is connected yet, so no webhook fires. Then every user connects through the
// gateway exactly as a platform's user would (POST /api/calendly/token with their personal access
// token, `--connect-concurrency` at a time): identity checks the token, subscription requests the
// import and creates the webhook, meetings imports (IMPORT_CONCURRENCY = `--import-concurrency`).
// The clock runs from the first connect to the last import completed (meetings' `imports` rows).
//
// Prints users per minute, meetings (invitees) per second, Calendly requests per user (the
// import's own, from meetings' checkpoints, and everything the simulator counted, connect
// included), what one import costs of Calendly's 500 requests per user per minute, 429s,
// CPU per service, and the load average (the machine is shared: read the figures with it).
//
// Uses DATABASE_URL / NATS_URL when set, else an embedded Postgres and a local nats-server.
// Needs a build first: npm run build
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import systemLib from '../../lib/system.cjs';
import bench from '../../lib/bench.cjs';
import devJwt from '../../lib/dev-jwt.cjs';

const { values } = parseArgs({
  options: {
    users: { type: 'string', default: '1000' },
    meetings: { type: 'string', default: '200' },
    'connect-concurrency': { type: 'string', default: '16' },
    'import-concurrency': { type: 'string', default: '4' },
  },
});
const userCount = Number(values.users);
const meetingsPerUser = Number(values.meetings);
const connectConcurrency = Number(values['connect-concurrency']);
const importConcurrency = Number(values['import-concurrency']);
for (const [name, value] of [
  ['--users', userCount],
  ['--meetings', meetingsPerUser],
  ['--connect-concurrency', connectConcurrency],
  ['--import-concurrency', importConcurrency],
])
  if (!Number.isInteger(value) || value <= 0) throw new Error(`${name} must be a positive whole number`);
if (importConcurrency > 64) throw new Error('--import-concurrency must be at most 64 (meetings refuses more)');

const rootDir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const requireFromRepo = createRequire(join(rootDir, 'package.json'));
const say = (line) => process.stdout.write(`${line}\n`);
const paidBudgetPerMinute = 500; // Calendly's per-user limit on paid plans (the simulator's default)
const day = 24 * 3600 * 1000;

/** Runs `work(i)` for i in [0, count) with at most `width` at once. */
async function pool(count, width, work) {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(width, count) }, async () => {
      while (next < count) await work(next++);
    }),
  );
}

const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];

async function main() {
  bench.printBenchHeader(rootDir);
  const cleanup = bench.createCleanup();
  const dir = mkdtempSync(join(tmpdir(), 'calsync-bench-import-'));
  cleanup.add(() => rmSync(dir, { recursive: true, force: true }));
  try {
    const { databaseUrl, natsUrl } = await bench.benchInfra({ dir, cleanup, databasePrefix: 'calsync_bench_import' });

    const system = await systemLib.startSystem({
      rootDir,
      databaseUrl,
      natsUrl,
      natsSubjectPrefix: `benchimp${Date.now().toString(36)}`,
      // `info`: each service's `ready` line is what startSystem waits for; keep only the last lines.
      logLevel: 'info',
      maxLines: 200,
      extraEnv: {
        meetings: { IMPORT_CONCURRENCY: String(importConcurrency) },
        // Only the connects' own calls reach Calendly (no reconcile pass in the middle).
        subscription: { RECONCILE_INTERVAL_SECONDS: '0' },
      },
    });
    cleanup.add(system.stop);
    const { simulator, gateway } = system.urls;
    const db = new (requireFromRepo('pg').Pool)({ connectionString: databaseUrl, max: 2 });
    cleanup.add(() => db.end());

    say(`seeding ${userCount} Calendly users with ${meetingsPerUser} meetings each...`);
    const seedStarted = Date.now();
    const users = new Array(userCount);
    const firstStart = Math.ceil((Date.now() + day) / 3_600_000) * 3_600_000;
    const spacing = Math.max(60_000, Math.floor((60 * day) / meetingsPerUser));
    await pool(userCount, 8, async (i) => {
      const user = await bench.json(`${simulator}/_sim/users`, {
        method: 'POST',
        body: { name: `Importer ${i}`, email: `importer${i}@example.test`, plan: 'standard' },
      });
      for (let m = 0; m < meetingsPerUser; m++) {
        const start = firstStart + m * spacing;
        await bench.json(`${simulator}/_sim/bookings`, {
          method: 'POST',
          body: {
            user: user.uri,
            invitee: { name: `Guest ${m}`, email: `guest${m}@example.test` },
            start_time: new Date(start).toISOString(),
            end_time: new Date(start + 30 * 60_000).toISOString(),
          },
        });
      }
      users[i] = { userId: `import-user-${i}`, token: user.personal_access_token };
      if ((i + 1) % 100 === 0) say(`  ${i + 1} users (${((Date.now() - seedStarted) / 1000).toFixed(0)} s)`);
    });
    say(`  seeded in ${((Date.now() - seedStarted) / 1000).toFixed(1)} s`);

    const services = Object.entries(system.processes).filter(([name]) => name !== 'calendly-sim');
    const cpuBefore = Object.fromEntries(
      services.map(([name, p]) => [name, bench.processUsage(p.child.pid).cpuSeconds]),
    );
    const before = await bench.json(`${simulator}/_sim/api_requests`);
    const completedCount = async () =>
      (
        await db.query(
          `SELECT count(*)::int AS n FROM meetings.imports WHERE kind = 'initial_import' AND status = 'completed'`,
        )
      ).rows[0].n;

    say(`connecting ${userCount} users through the gateway, ${connectConcurrency} at a time...`);
    const started = Date.now();
    let connectFailures = 0;
    const connecting = pool(userCount, connectConcurrency, async (i) => {
      const { userId, token } = users[i];
      const response = await fetch(`${gateway}/api/calendly/token`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          authorization: `Bearer ${devJwt.signDevJwt(userId, system.secrets.jwtSecret)}`,
        },
        body: JSON.stringify({ token }),
      });
      if (response.status !== 200) {
        connectFailures += 1;
        say(`  connect ${userId}: ${response.status} ${await response.text()}`);
      } else await response.arrayBuffer();
    });
    let lastReport = Date.now();
    let connectedAfter;
    void connecting.then(() => (connectedAfter = (Date.now() - started) / 1000));
    for (;;) {
      const done = await completedCount();
      if (done >= userCount - connectFailures && connectedAfter !== undefined) break;
      if (Date.now() - lastReport >= 10_000) {
        lastReport = Date.now();
        say(`  ${done} imports completed (${((Date.now() - started) / 1000).toFixed(0)} s)`);
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    await connecting;
    const seconds = (Date.now() - started) / 1000;
    const after = await bench.json(`${simulator}/_sim/api_requests`);
    const { rows } = await db.query(
      `SELECT events, invitees, calendly_requests, resumes,
              extract(epoch FROM completed_at - started_at)::float AS seconds
       FROM meetings.imports WHERE kind = 'initial_import' AND status = 'completed'`,
    );
    const imported = rows.length;
    const invitees = rows.reduce((sum, row) => sum + row.invitees, 0);
    const importRequests = rows.reduce((sum, row) => sum + row.calendly_requests, 0);
    const durations = rows.map((row) => row.seconds).sort((a, b) => a - b);
    const load = loadavg();

    say('');
    say(`import on connect: ${userCount} users x ${meetingsPerUser} meetings`);
    say(
      `  users           ${imported} imported, ${connectFailures} connects failed; all connected after ${connectedAfter.toFixed(1)} s`,
    );
    say(`  time            ${seconds.toFixed(1)} s from the first connect to the last import completed`);
    say(
      `  rate            ${((imported / seconds) * 60).toFixed(1)} users per minute, ${(invitees / seconds).toFixed(0)} invitees per second`,
    );
    say(
      `  one import      ${percentile(durations, 50).toFixed(1)} s p50, ${percentile(durations, 90).toFixed(1)} s p90, ${durations.at(-1).toFixed(1)} s max (queued time not included)`,
    );
    say(
      `  Calendly        ${(importRequests / Math.max(1, imported)).toFixed(1)} requests per user for the import, ${((after.requests - before.requests) / Math.max(1, userCount)).toFixed(1)} per user in all (connect and webhook included); ${after.rate_limited - before.rate_limited} answered 429`,
    );
    const perImport = importRequests / Math.max(1, imported);
    say(
      `  vs rate limit   an import costs ${((perImport / paidBudgetPerMinute) * 100).toFixed(0)} % of one user's ${paidBudgetPerMinute}/min window; meetings stops a user at ${100 - 20} % of a window (IMPORT_RATE_RESERVE_PERCENT 20) and waits for its reset, so an import over ${Math.floor((paidBudgetPerMinute * 0.8) / Math.max(1, perImport / Math.max(1, meetingsPerUser)))} meetings spans windows`,
    );
    say(`  resumes         ${rows.reduce((sum, row) => sum + row.resumes, 0)}`);
    for (const [name, p] of services) {
      const cpu = bench.processUsage(p.child.pid).cpuSeconds - cpuBefore[name];
      say(
        `  ${name.padEnd(15)} ${((cpu * 1000) / Math.max(1, imported)).toFixed(1)} ms CPU per user, RSS ${bench.processUsage(p.child.pid).rssMb.toFixed(0)} MB`,
      );
    }
    say(`  load average    ${load.map((l) => l.toFixed(2)).join(' ')} on ${cpus().length} cores`);
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
