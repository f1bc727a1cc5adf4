// The meetings applier's cost per delivery: how many deliveries a second one process applies,
// the CPU (milliseconds of this process, which is where node-postgres spends it, and of the
// Postgres backends serving it, when they run on this machine) and the database round trips each
// one costs, through the real applier against a real Postgres. No NATS, no gRPC:
// only what the meetings service does between taking a delivery off the stream and acking it.
//
//   node scripts/bench/apply/index.mjs [--deliveries 4000] [--users 100] [--concurrency 4]
//                                      [--in-hand 50] [--rounds 2] [--baseline DIR]
//
// Every delivery is a webhook delivery (so it is logged) of a new booking (invitee.created of a
// scheduled event not seen before), spread round-robin over `--users` users, `--in-hand` of them
// handed to the applier at a time (as the service holds CONSUMER_BATCH_SIZE messages, 50 by
// default), applied by `--concurrency` transactions at once over a pool of as many connections
// (the service's CONSUMER_CONCURRENCY, 4 by default); a build whose applier takes no such setting
// runs one transaction per delivery, the pool's size at once. Round trips are counted as the
// server's ReadyForQuery messages on every pooled connection, and the deliveries per transaction
// from the applier, when it reports them.
//
// With `--baseline DIR` (another meetings build: DIR/dist and DIR/migrations, e.g. a copy of
// services/meetings/{dist,migrations} taken before a change), the baseline and this build run in
// turn, `--rounds` times each on schemas of their own, and the ratios this/baseline are printed:
// a comparison measured in one run on one machine state. Read every figure with the load average.
//
// Uses DATABASE_URL when set, else an embedded Postgres (and a local nats-server it does not use).
// Needs a build first: npm run build
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import bench from '../../lib/bench.cjs';

const { values } = parseArgs({
  options: {
    deliveries: { type: 'string', default: '4000' },
    users: { type: 'string', default: '100' },
    concurrency: { type: 'string', default: '4' },
    'in-hand': { type: 'string', default: '50' },
    rounds: { type: 'string', default: '2' },
    baseline: { type: 'string' },
  },
});
const deliveryCount = Number(values.deliveries);
const userCount = Number(values.users);
const concurrency = Number(values.concurrency);
const inHand = Number(values['in-hand']);
const rounds = Number(values.rounds);
for (const [name, value] of [
  ['--deliveries', deliveryCount],
  ['--users', userCount],
  ['--concurrency', concurrency],
  ['--in-hand', inHand],
  ['--rounds', rounds],
])
  if (!Number.isInteger(value) || value <= 0) throw new Error(`${name} must be a positive whole number`);

const rootDir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const requireFromRepo = createRequire(join(rootDir, 'package.json'));
const kit = requireFromRepo('@calsync/service-kit');
const { inviteeCreatedBody } = requireFromRepo('@calsync/calendly-client/testing');
const say = (line) => process.stdout.write(`${line}\n`);
// Warm-up deliveries per run, not counted: JIT, prepared plans, a connection per slot.
const warmUp = 300;

function loadBuild(label, dir) {
  const requireBuild = createRequire(join(dir, 'dist', 'main.js'));
  return {
    label,
    dir,
    applier: requireBuild('./meetings/meetings-applier.js'),
    migrations: requireBuild('./migrations.js'),
  };
}

const hosts = Array.from({ length: userCount }, (_, i) => ({
  userId: `bench-apply-user-${i}`,
  host: { uri: `https://api.calendly.com/users/BENCHAPPLY${i}`, email: `host${i}@example.test`, name: `Host ${i}` },
}));

function newBooking(i) {
  const { userId, host } = hosts[i % hosts.length];
  return {
    deliveryKey: randomUUID(),
    userId,
    eventType: 'invitee.created',
    payload: inviteeCreatedBody(host),
    receivedAt: new Date(),
  };
}

/**
 * pool.end(), and then until every connection of it has closed: pg-pool's end() resolves as soon
 * as it has asked its idle connections to close, and the next step (dropping the bench's
 * database, stopping its Postgres) would otherwise terminate them mid-close, each logged as lost.
 */
async function endPoolAndItsConnections(pool) {
  let open = pool.totalCount;
  const closed = new Promise((resolve) => {
    if (open === 0) resolve();
    pool.on('remove', () => {
      if (--open === 0) resolve();
    });
  });
  await pool.end();
  await closed;
}

async function measure(build, databaseUrl, round, log) {
  const schema = `bench_apply_${build.label}_${round}_${Date.now().toString(36)}`;
  await build.migrations.migrateSchema({ DATABASE_URL: databaseUrl, DATABASE_SCHEMA: schema }, log);
  const pool = kit.createPool({ url: databaseUrl, schema, max: concurrency, log });
  let roundTrips = 0;
  // The Postgres backend behind each connection, for the server's side of the cost.
  const backends = new Set();
  pool.on('connect', (client) => {
    backends.add(client.processID);
    // A round trip ends with the server's ReadyForQuery, however many statements it carried.
    client.connection.on('readyForQuery', () => roundTrips++);
  });
  try {
    let transactions = 0;
    let applied = 0;
    const applier = build.applier.createMeetingsApplier({
      pool,
      log,
      transactions: concurrency,
      observeTransaction: (deliveries) => {
        transactions++;
        applied += deliveries;
      },
    });
    const run = async (count) => {
      // Made before the clock starts: the bench measures applying, not making payloads.
      const deliveries = Array.from({ length: count }, (_, i) => newBooking(i));
      const outcomes = new Map();
      let next = 0;
      await Promise.all(
        Array.from({ length: inHand }, async () => {
          while (next < count) {
            const outcome = await applier.apply(deliveries[next++]);
            outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
          }
        }),
      );
      return outcomes;
    };
    await run(warmUp);
    roundTrips = 0;
    transactions = 0;
    applied = 0;
    const backendCpuBefore = backendCpuSeconds(backends);
    const cpuBefore = process.cpuUsage();
    const started = process.hrtime.bigint();
    const outcomes = await run(deliveryCount);
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const cpu = process.cpuUsage(cpuBefore);
    const backendCpuAfter = backendCpuSeconds(backends);
    if (outcomes.get('applied') !== deliveryCount)
      throw new Error(`expected every delivery applied, got ${JSON.stringify([...outcomes])}`);
    return {
      perSecond: deliveryCount / seconds,
      cpuMs: (cpu.user + cpu.system) / 1000 / deliveryCount,
      roundTrips: roundTrips / deliveryCount,
      perTransaction: transactions > 0 ? applied / transactions : NaN,
      backendCpuMs:
        backendCpuBefore === null || backendCpuAfter === null
          ? NaN
          : ((backendCpuAfter - backendCpuBefore) * 1000) / deliveryCount,
    };
  } finally {
    await pool.query(`DROP SCHEMA ${schema} CASCADE`).finally(() => endPoolAndItsConnections(pool));
  }
}

/** CPU seconds of these Postgres backends so far (/proc), or null when they are not on this machine. */
function backendCpuSeconds(pids) {
  try {
    return [...pids].reduce((sum, pid) => sum + bench.processUsage(pid).cpuSeconds, 0);
  } catch {
    return null;
  }
}

const format = (result) =>
  `${result.perSecond.toFixed(0)} deliveries/s, ${result.cpuMs.toFixed(3)} CPU ms/delivery, ` +
  `${result.roundTrips.toFixed(2)} round trips/delivery, ` +
  `${Number.isNaN(result.perTransaction) ? 'n/a' : result.perTransaction.toFixed(1)} deliveries/transaction, ` +
  `Postgres backends ${Number.isNaN(result.backendCpuMs) ? 'n/a' : result.backendCpuMs.toFixed(3)} CPU ms/delivery`;

const mean = (results, key) => results.reduce((sum, result) => sum + result[key], 0) / results.length;

async function main() {
  bench.printBenchHeader(rootDir);
  const cleanup = bench.createCleanup();
  const dir = mkdtempSync(join(tmpdir(), 'calsync-bench-apply-'));
  cleanup.add(() => rmSync(dir, { recursive: true, force: true }));
  try {
    const { databaseUrl } = await bench.benchInfra({ dir, cleanup, databasePrefix: 'calsync_bench_apply' });
    const log = kit.createLogger({ service: 'bench-apply', level: 'warn' });
    const builds = [loadBuild('this', join(rootDir, 'services', 'meetings'))];
    if (values.baseline) builds.unshift(loadBuild('baseline', resolve(values.baseline)));
    say(
      `${deliveryCount} new bookings for ${userCount} users, ${inHand} in hand, ${concurrency} transactions at a time, ` +
        `${rounds} round(s) per build after ${warmUp} warm-up deliveries`,
    );
    const results = new Map(builds.map((build) => [build.label, []]));
    for (let round = 1; round <= rounds; round++) {
      for (const build of builds) {
        const result = await measure(build, databaseUrl, round, log);
        results.get(build.label).push(result);
        say(`round ${round} ${build.label === 'this' ? 'this build' : `baseline (${build.dir})`}: ${format(result)}`);
      }
    }
    const summary = new Map(
      [...results].map(([label, runs]) => [
        label,
        {
          perSecond: mean(runs, 'perSecond'),
          cpuMs: mean(runs, 'cpuMs'),
          roundTrips: mean(runs, 'roundTrips'),
          perTransaction: mean(runs, 'perTransaction'),
          backendCpuMs: mean(runs, 'backendCpuMs'),
        },
      ]),
    );
    for (const [label, result] of summary)
      say(`mean ${label === 'this' ? 'this build' : 'baseline'}: ${format(result)}`);
    const base = summary.get('baseline');
    if (base) {
      const now = summary.get('this');
      say(
        `this/baseline: deliveries/s x${(now.perSecond / base.perSecond).toFixed(2)}, ` +
          `CPU ms/delivery x${(now.cpuMs / base.cpuMs).toFixed(2)}, ` +
          `round trips/delivery x${(now.roundTrips / base.roundTrips).toFixed(2)}, ` +
          `Postgres backend CPU ms/delivery x${(now.backendCpuMs / base.backendCpuMs).toFixed(2)}`,
      );
    }
    say(
      `load average (1/5/15 min) after: ${loadavg()
        .map((n) => n.toFixed(2))
        .join(' ')}`,
    );
  } finally {
    await cleanup.run();
  }
}

await main();
