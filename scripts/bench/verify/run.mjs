// VerifyAndResolveUser over gRPC at 100, 10,000 and 100,000 subscriptions: calsync's
// subscription service (O(1) hook lookup, one HMAC) side by side with the seed's approach
// (read every key, try each) and with a plain grpc-js unary call (grpc.health.v1 Check on the
// same server, same mutual TLS, same concurrency): the transport's ceiling. Within a round,
// verify and Check run in alternating slices (BENCH_SLICES of each, BENCH_SLICE_MS long, the
// first method alternating from round to round) over the same open channels, so a change in
// background load hits both alike and their ratio, printed per round with its spread, is what
// the bench stands on. Within a round the sizes take turns in blocks of BENCH_BLOCK_SLICES
// slices (4 s), so the throughput of 100,000 against 100 compares moments seconds apart, not a
// size's whole round with another's later one. A block is long beside the garbage collection a
// service may still finish after its turn (the heap of 100,000 hooks has more of it): a size's
// CPU is counted from the start of its block to the start of its next one, so that work is its
// own. After the rounds, one more verify phase samples the service's V8 heap through its
// inspector (opened by SIGUSR1 only then), and full garbage collections show the live heap beside
// the peak RSS. Prints throughput, p99, server CPU per call, memory, the ratios, the command, the
// machine and the load average.
// Build first: `npx tsc -p services/subscription/tsconfig.build.json`.
//
//   node scripts/bench/verify/run.mjs
//
// Env (all optional): BENCH_DATABASE_URL (a server where a database may be created; default
// CALSYNC_TEST_DATABASE_URL, else an embedded Postgres), BENCH_NATS_URL (default
// CALSYNC_TEST_NATS_URL, else a local nats-server), BENCH_SIZES (100,10000,100000),
// BENCH_ROUNDS (5), BENCH_SLICES (12 of each method per round), BENCH_SLICE_MS (500),
// BENCH_BLOCK_SLICES (8: the slices one size runs before the next size's turn),
// BENCH_MEMORY_MS (6000), BENCH_CONCURRENCY (32), BENCH_CLIENT_THREADS (2),
// BENCH_SEED_MAX_REQUESTS (100), BENCH_SEED_PHASE_MS (2000), BENCH_WARMUP_MS (3000),
// BENCH_SERVICE_NODE_ARGS (space-separated node options for the subscription processes, beside
// the deployed NODE_OPTIONS from the chart's subscription.heap; e.g. `--cpu-prof --cpu-prof-dir=/tmp/verify-prof`). The seed's requests are capped (at 100,000
// one takes seconds).
import { createHmac, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { once } from 'node:events';
import { cpus, loadavg, tmpdir } from 'node:os';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { inspectorUrlOf, openInspectorOf } from './heap-probe.mjs';

const require = createRequire(import.meta.url);
const benchDir = dirname(fileURLToPath(import.meta.url));
const root = join(benchDir, '..', '..', '..');
const subscriptionDist = join(root, 'services', 'subscription', 'dist');
if (!existsSync(join(subscriptionDist, 'main.js'))) {
  console.error('build first: npx tsc -p services/subscription/tsconfig.build.json');
  process.exit(1);
}
const kit = require(join(root, 'services', 'service-kit', 'dist', 'index.js'));
const { createThrowawayCa, spawnService } = require(
  join(root, 'services', 'service-kit', 'dist', 'testing', 'index.js'),
);
const { createWebhookRepository } = require(join(subscriptionDist, 'webhooks', 'webhook-repository.js'));
const { newHookId, newSigningKey } = require(join(subscriptionDist, 'webhooks', 'webhook-secrets.js'));
const { signingKeyContext } = require(join(subscriptionDist, 'webhooks', 'hook-loader.js'));
const { migrateSchema } = require(join(subscriptionDist, 'migrations.js'));
const { Client } = require('pg');
const { nodeOptionsEnv } = require(join(root, 'scripts', 'lib', 'node-options.cjs'));

const env = process.env;
const { startEmbeddedPostgres, startLocalNats } = require(join(root, 'scripts', 'lib', 'local-infra.cjs'));
const bench = require(join(root, 'scripts', 'lib', 'bench.cjs'));
// Given, else started here (a fresh clone needs no environment).
let serverUrl = env.BENCH_DATABASE_URL ?? env.CALSYNC_TEST_DATABASE_URL;
let natsUrl = env.BENCH_NATS_URL ?? env.CALSYNC_TEST_NATS_URL;
const sizes = (env.BENCH_SIZES ?? '100,10000,100000').split(',').map(Number);
const rounds = Number(env.BENCH_ROUNDS ?? 5);
const slices = Number(env.BENCH_SLICES ?? 12);
const sliceMs = Number(env.BENCH_SLICE_MS ?? 500);
// Slices a size runs back to back before the next size takes its turn (half verify, half Check).
const blockSlices = Number(env.BENCH_BLOCK_SLICES ?? 8);
if (!Number.isInteger(blockSlices) || blockSlices < 2 || blockSlices % 2 !== 0 || (2 * slices) % blockSlices !== 0)
  throw new Error('BENCH_BLOCK_SLICES must be even and divide 2 x BENCH_SLICES');
const memoryMs = Number(env.BENCH_MEMORY_MS ?? 6000);
// The NODE_OPTIONS subscription is deployed with (the chart's subscription.heap), plus any node options given.
const deployedNodeOptions = nodeOptionsEnv(root, 'subscription');
const serviceNodeArgs = (env.BENCH_SERVICE_NODE_ARGS ?? '').split(' ').filter(Boolean);
const concurrency = Number(env.BENCH_CONCURRENCY ?? 32);
const clientThreads = Number(env.BENCH_CLIENT_THREADS ?? 2);
const seedMaxRequests = Number(env.BENCH_SEED_MAX_REQUESTS ?? 100);
const seedPhaseMs = Number(env.BENCH_SEED_PHASE_MS ?? 2000);
const warmupMs = Number(env.BENCH_WARMUP_MS ?? 3000);
const requestPool = 4_000;
const log = kit.createLogger({ service: 'bench-verify', level: 'warn' });
const sealingKey = randomBytes(32);
const sealingKeys = `bench=${sealingKey.toString('base64')}`;
const sealer = kit.createSealer({ keys: new Map([['bench', sealingKey]]), activeKeyId: 'bench' });
const { subscribedEvents } = require('@calsync/calendly-client');
const { inviteeCreatedBody } = require('@calsync/calendly-client/testing');
const events = [...subscribedEvents];

// Every call goes over mutual TLS, as in production: subscription's certificate and the gateway's.
// Certificates re-read at the production default (30 s), not the tests' 1 s: each re-read
// rebuilds the server's TLS context, a cost production does not pay once a second.
const ca = await createThrowawayCa({ reloadIntervalMs: 30_000 });
const gatewaySecurity = await ca.security(kit.grpcIdentities.gateway);
const say = (line) => process.stdout.write(`${line}\n`);
const userUri = (i) => `https://api.calendly.com/users/BENCH${String(i).padStart(8, '0')}`;

/** A realistic invitee.created delivery for user i (about 2 kB, like Calendly's). */
const deliveryBody = (i) => inviteeCreatedBody({ uri: userUri(i), email: `host${i}@example.com`, name: `Host ${i}` });

function signed(key, i) {
  const rawBody = deliveryBody(i);
  const t = String(Math.floor(Date.now() / 1000));
  const v1 = createHmac('sha256', key).update(`${t}.`).update(rawBody).digest('hex');
  return { request: { hookId: '', signatureHeader: `t=${t},v1=${v1}`, rawBody }, userId: `bench-user-${i}` };
}

/** Seeds `size` hooks into the schema through the service's own repository; returns their ids and keys. */
async function seed(databaseUrl, schema, size) {
  await migrateSchema({ DATABASE_URL: databaseUrl, DATABASE_SCHEMA: schema }, log);
  const pool = kit.createPool({ url: databaseUrl, schema, max: 2, log });
  const repository = createWebhookRepository(pool);
  const hooks = [];
  try {
    for (let start = 0; start < size; start += 5_000) {
      const batch = [];
      for (let i = start; i < Math.min(size, start + 5_000); i++) {
        const hookId = newHookId();
        const key = newSigningKey();
        hooks.push({ hookId, key });
        batch.push({
          hookId,
          userId: `bench-user-${i}`,
          calendlyUserUri: userUri(i),
          calendlyOrganizationUri: 'https://api.calendly.com/organizations/BENCH',
          calendlySubscriptionUri: `https://api.calendly.com/webhook_subscriptions/${hookId}`,
          callbackUrl: `https://calsync.bench/webhooks/calendly/${hookId}`,
          events,
          state: 'active',
          signingKeySource: 'subscription',
          signingKeySealed: sealer.seal(key, signingKeyContext(hookId)),
        });
      }
      await repository.insertMany(batch);
    }
  } finally {
    await pool.end();
  }
  return hooks;
}

/** Requests for random hooks, signed now (valid for the 180 s window). */
function requestsFor(hooks, count) {
  const requests = [];
  for (let n = 0; n < count; n++) {
    const i = Math.floor(Math.random() * hooks.length);
    const { request, userId } = signed(hooks[i].key, i);
    requests.push({ request: { ...request, hookId: hooks[i].hookId }, userId });
  }
  return requests;
}

/** How long the service took to load its hooks, from its `hook cache warmed` log line. */
async function warmedIn(service) {
  const deadline = Date.now() + 300_000;
  for (;;) {
    for (const line of service.lines) {
      const entry = JSON.parse(line);
      if (entry.msg === 'hook cache warmed') return entry.ms;
    }
    if (Date.now() > deadline) throw new Error('the service did not warm its hook cache in time');
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** The first failed or wrong answer of the whole run, printed with the count. */
let firstFailure;

/**
 * `threads` load-generating threads on `address`, their channels open (and TLS done) before the
 * first run: `use` hands them requests, `run` sends calls with `workers` in flight in all until
 * the time or request budget runs out, and waits for every call in flight.
 */
async function createLoadPool(address, threads = clientThreads) {
  const pool = await Promise.all(
    Array.from(
      { length: threads },
      () =>
        new Promise((resolve, reject) => {
          const worker = new Worker(join(benchDir, 'load-worker.mjs'), {
            workerData: { address, security: gatewaySecurity },
          });
          worker.once('error', reject);
          worker.once('message', () => resolve(worker));
        }),
    ),
  );
  const ask = (worker, message, answer) =>
    new Promise((resolve, reject) => {
      const onMessage = (reply) => {
        if (reply.type !== answer) return;
        worker.off('message', onMessage);
        worker.off('error', reject);
        resolve(reply);
      };
      worker.on('message', onMessage);
      worker.once('error', reject);
      worker.postMessage(message);
    });
  return {
    use: (requests) =>
      Promise.all(
        pool.map((worker, index) =>
          ask(worker, { type: 'requests', requests: requests.slice(index).concat(requests.slice(0, index)) }, 'ok'),
        ),
      ),
    async run({ durationMs, maxRequests = Infinity, workers, method = 'verify' }) {
      const runs = await Promise.all(
        pool.map((worker) =>
          ask(
            worker,
            {
              type: 'run',
              durationMs,
              maxRequests: Math.ceil(maxRequests / threads),
              workers: Math.max(1, Math.round(workers / threads)),
              method,
            },
            'ran',
          ),
        ),
      );
      return {
        latencies: runs.flatMap((run) => run.latencies),
        seconds: Math.max(...runs.map((run) => run.seconds)),
        wrong: runs.reduce((sum, run) => {
          if (run.firstFailure) firstFailure ??= `${address}: ${run.firstFailure}`;
          return sum + run.wrong;
        }, 0),
      };
    },
    close: () =>
      Promise.all(
        pool.map((worker) => {
          worker.postMessage({ type: 'close' });
          return once(worker, 'exit');
        }),
      ),
  };
}

/** Resident memory of a process now, in MB. */
const rssMbOf = (pid) => bench.processRssMb(pid);

/** Runs `phase` while sampling the process's resident memory every 250 ms; resolves [result, peak MB]. */
async function withPeakRss(pid, phase) {
  let peak = rssMbOf(pid);
  const sampler = setInterval(() => (peak = Math.max(peak, rssMbOf(pid))), 250);
  try {
    const result = await phase();
    return [result, Math.max(peak, rssMbOf(pid))];
  } finally {
    clearInterval(sampler);
  }
}

/**
 * Waits until a process has stopped using the processor (at most 20 s): the seed's service
 * goes on trying keys for the requests still in hand when its phase ends, seconds of CPU at
 * 100,000 hooks that must not land in the next measurement.
 */
async function untilIdle(pid) {
  const deadline = Date.now() + 20_000;
  let last = bench.processCpuSeconds(pid);
  while (Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 200));
    const now = bench.processCpuSeconds(pid);
    if (now - last < 0.01) return;
    last = now;
  }
}

const percentile = (values, p) => {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
};
const median = (values) => percentile(values, 50);
/** (max - min) / median of a round's figures, in percent: how far the rounds agree. */
const spread = (values) => ((Math.max(...values) - Math.min(...values)) / median(values)) * 100;
const loadAverage = () =>
  loadavg()
    .map((n) => n.toFixed(2))
    .join(' ');
const startLoad = loadAverage();
const fmt = (value, digits = 0) =>
  Number.isFinite(value)
    ? value.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })
    : 'n/a';

async function main() {
  bench.printBenchHeader(root);
  const cleanups = bench.createCleanup();
  cleanups.add(() => ca.remove());
  if (!serverUrl || !natsUrl) {
    const workDir = mkdtempSync(join(tmpdir(), 'calsync-bench-verify-'));
    cleanups.add(() => rmSync(workDir, { recursive: true, force: true }));
    if (!serverUrl) {
      const postgres = await startEmbeddedPostgres({ dir: join(workDir, 'postgres') });
      cleanups.add(postgres.stop);
      serverUrl = postgres.url;
    }
    if (!natsUrl) {
      const nats = await startLocalNats({ dir: join(workDir, 'nats') });
      cleanups.add(nats.stop);
      natsUrl = nats.url;
    }
  }
  const databaseName = `calsync_bench_verify_${randomBytes(4).toString('hex')}`;
  const admin = new Client({ connectionString: serverUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${databaseName}`);
  await admin.end();
  cleanups.add(async () => {
    const client = new Client({ connectionString: serverUrl });
    await client.connect();
    await client.query(`DROP DATABASE IF EXISTS ${databaseName} WITH (FORCE)`);
    await client.end();
  });
  const url = new URL(serverUrl);
  url.pathname = `/${databaseName}`;
  const databaseUrl = url.toString();
  const prefix = `bench${randomBytes(3).toString('hex')}`;
  const began = performance.now();
  try {
    const targets = [];
    for (const size of sizes) {
      const schema = `bench_${size}`;
      const seeding = performance.now();
      const hooks = await seed(databaseUrl, schema, size);
      say(`seeded ${fmt(size)} subscriptions in ${fmt((performance.now() - seeding) / 1000, 1)} s`);
      const common = {
        ...(await ca.env(kit.grpcIdentities.subscription)),
        DATABASE_URL: databaseUrl,
        DATABASE_SCHEMA: schema,
        SEALING_KEYS: sealingKeys,
        SEALING_ACTIVE_KEY_ID: 'bench',
        GRPC_HOST: '127.0.0.1',
        GRPC_PORT: '0',
      };
      const target = { size, hooks, inspectorUrl: undefined };
      const service = await spawnService({
        entry: join(subscriptionDist, 'main.js'),
        maxLines: 200,
        // The inspector listens only once the memory phase sends SIGUSR1, on a free loopback port.
        nodeArgs: ['--inspect-port=127.0.0.1:0', ...serviceNodeArgs],
        onLine: (line) => (target.inspectorUrl ??= inspectorUrlOf(line)),
        env: {
          // The chart's NODE_OPTIONS (heap limits): measured as deployed.
          ...deployedNodeOptions,
          ...common,
          METRICS_PORT: '0',
          NATS_URL: natsUrl,
          NATS_SUBJECT_PREFIX: `${prefix}${size}`,
          // Never called while verifying: deliveries need neither identity, meetings nor Calendly.
          IDENTITY_ADDR: '127.0.0.1:9',
          MEETINGS_ADDR: '127.0.0.1:9',
          CALENDLY_API_URL: 'http://127.0.0.1:9',
          PUBLIC_BASE_URL: 'https://calsync.bench',
          RECONCILE_INTERVAL_SECONDS: '0',
          LOG_LEVEL: 'info',
        },
      });
      cleanups.add(() => service.stop());
      const seedProcess = await spawnService({
        entry: join(root, 'scripts', 'bench', 'verify', 'seed-verifier.mjs'),
        env: common,
        maxLines: 200,
      });
      cleanups.add(() => seedProcess.stop());
      targets.push(
        Object.assign(target, {
          service,
          calsync: await createLoadPool(`127.0.0.1:${service.ready.grpcPort}`),
          seed: `127.0.0.1:${seedProcess.ready.grpcPort}`,
          seedPid: seedProcess.child.pid,
          results: {
            calsync: [],
            calsyncLatencies: [],
            calsyncCpu: [],
            health: [],
            healthCpu: [],
            toHealth: [],
            peakRssMb: 0,
            seed: [],
            seedLatencies: [],
            wrong: 0,
          },
        }),
      );
      cleanups.add(() => target.calsync.close());
    }

    // Each service loads every hook into memory when it starts; wait for that, then give every
    // server process a few seconds of both calls so all of them are JIT-warm before anything counts.
    for (const target of targets) {
      target.warmedMs = await warmedIn(target.service);
      await target.calsync.use(requestsFor(target.hooks, requestPool));
      for (const method of ['verify', 'health']) {
        const settle = await target.calsync.run({ durationMs: warmupMs, workers: concurrency, method });
        target.results.wrong += settle.wrong;
      }
    }

    for (let round = 1; round <= rounds; round++) {
      // The sizes take turns block by block, so a drift of the machine's speed during the round
      // reaches all sizes alike and their ratio stands on moments seconds apart.
      const totalsOf = new Map();
      for (const target of targets) {
        await target.calsync.use(requestsFor(target.hooks, requestPool));
        totalsOf.set(target, { verify: { calls: 0, seconds: 0, cpu: 0 }, health: { calls: 0, seconds: 0, cpu: 0 } });
      }
      // A slice's CPU is the process's from the slice's start to the next slice's start of the
      // same process, what it finished after its block included.
      const pendingCpu = new Map();
      const settleCpu = (target) => {
        const pending = pendingCpu.get(target);
        if (!pending) return;
        totalsOf.get(target)[pending.method].cpu += bench.processCpuSeconds(target.service.child.pid) - pending.since;
        pendingCpu.delete(target);
      };
      for (let block = 0; block < (2 * slices) / blockSlices; block++) {
        for (const target of targets) {
          // Verify and Check in turn, the same number of slices each; which goes first alternates.
          for (let slice = block * blockSlices; slice < (block + 1) * blockSlices; slice++) {
            const method = (slice + round) % 2 === 1 ? 'verify' : 'health';
            const r = target.results;
            const pid = target.service.child.pid;
            settleCpu(target);
            pendingCpu.set(target, { method, since: bench.processCpuSeconds(pid) });
            const [ran, peakRss] = await withPeakRss(pid, () =>
              target.calsync.run({ durationMs: sliceMs, workers: concurrency, method }),
            );
            const total = totalsOf.get(target)[method];
            total.calls += ran.latencies.length;
            total.seconds += ran.seconds;
            r.wrong += ran.wrong;
            r.peakRssMb = Math.max(r.peakRssMb, peakRss);
            if (method === 'verify') r.calsyncLatencies.push(...ran.latencies);
          }
        }
      }
      for (const target of targets) settleCpu(target);
      for (const target of targets) {
        const r = target.results;
        const totals = totalsOf.get(target);
        const rate = totals.verify.calls / totals.verify.seconds;
        const healthRate = totals.health.calls / totals.health.seconds;
        r.calsync.push(rate);
        r.calsyncCpu.push((totals.verify.cpu / totals.verify.calls) * 1e6);
        r.health.push(healthRate);
        r.healthCpu.push((totals.health.cpu / totals.health.calls) * 1e6);
        r.toHealth.push(rate / healthRate);
        say(
          `round ${round}/${rounds}, ${fmt(target.size)} hooks: verify ${fmt(rate)}/s, Check ${fmt(healthRate)}/s -> ${fmt(rate / healthRate, 3)}; server CPU ${fmt(r.calsyncCpu.at(-1))} / ${fmt(r.healthCpu.at(-1))} µs per call; load average ${loadAverage()}`,
        );
      }
      for (const target of targets) {
        const r = target.results;
        const seedPool = await createLoadPool(target.seed, 1);
        await seedPool.use(requestsFor(target.hooks, requestPool));
        const seedRun = await seedPool.run({
          durationMs: seedPhaseMs,
          maxRequests: Math.max(4, Math.ceil(seedMaxRequests / rounds)),
          workers: 4,
        });
        await seedPool.close();
        await untilIdle(target.seedPid);
        r.seed.push(seedRun.latencies.length / seedRun.seconds);
        r.seedLatencies.push(...seedRun.latencies);
        r.wrong += seedRun.wrong;
      }
    }

    // Memory, by itself after the rounds: the heap under verify load, sampled through the
    // inspector, then what is left after full collections (the live heap: the cache and the rest).
    for (const target of targets) {
      const pid = target.service.child.pid;
      const inspector = await openInspectorOf(target.service.child, () => target.inspectorUrl);
      try {
        await target.calsync.use(requestsFor(target.hooks, requestPool));
        const peak = { used: 0, total: 0, newSpace: 0 };
        let sampling = true;
        const sampler = (async () => {
          while (sampling) {
            const heap = await inspector.heap();
            peak.used = Math.max(peak.used, heap.used);
            peak.total = Math.max(peak.total, heap.total);
            peak.newSpace = Math.max(peak.newSpace, heap.spaces.new_space?.size ?? 0);
            await new Promise((resolve) => setTimeout(resolve, 250));
          }
        })();
        const [ran, peakRss] = await withPeakRss(pid, () =>
          target.calsync.run({ durationMs: memoryMs, workers: concurrency, method: 'verify' }),
        );
        sampling = false;
        await sampler;
        target.results.wrong += ran.wrong;
        await inspector.collectGarbage();
        const live = await inspector.heap();
        target.memory = {
          underLoad: { rate: ran.latencies.length / ran.seconds, peakRssMb: peakRss, ...peak },
          live,
          rssAfterGcMb: rssMbOf(pid),
        };
      } finally {
        inspector.close();
      }
    }

    say('');
    say(
      `VerifyAndResolveUser over gRPC, loopback, ${concurrency} in flight from ${clientThreads} client threads (seed: 4 from 1), median of ${rounds} rounds of ${slices} x ${sliceMs} ms verify slices interleaved with as many Check slices; ± is the rounds' spread (max - min) / median`,
    );
    say(
      '| subscriptions | calsync req/s | health Check req/s | calsync / Check | calsync p99 ms | server CPU per call: calsync / Check | peak RSS | seed req/s | seed p99 ms | calsync / seed | cache warm-up |',
    );
    say('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const target of targets) {
      const r = target.results;
      const calsync = median(r.calsync);
      const seedRate = median(r.seed);
      say(
        `| ${fmt(target.size)} | ${fmt(calsync)} ±${fmt(spread(r.calsync))}% | ${fmt(median(r.health))} ±${fmt(spread(r.health))}% | ${fmt(median(r.toHealth), 3)} ±${fmt(spread(r.toHealth), 1)}% | ${fmt(percentile(r.calsyncLatencies, 99), 1)} | ${fmt(median(r.calsyncCpu))} / ${fmt(median(r.healthCpu))} µs | ${fmt(r.peakRssMb)} MB | ${fmt(seedRate, 1)} | ${fmt(percentile(r.seedLatencies, 99), 0)} | ${fmt(calsync / seedRate, 0)}x | ${fmt(target.warmedMs / 1000, 1)} s |`,
      );
    }
    say('');
    say(
      `Memory of the service after the rounds, under ${fmt(memoryMs / 1000, 0)} s more of verify load (heap sampled every 250 ms through the inspector), then after full garbage collections`,
    );
    say(
      '| subscriptions | verify req/s | peak RSS | peak heap used / committed | young generation committed | live heap after GC | external (of it array buffers) | RSS after GC |',
    );
    say('|---:|---:|---:|---:|---:|---:|---:|---:|');
    const mb = (bytes) => `${fmt(bytes / 2 ** 20, 1)} MB`;
    for (const target of targets) {
      const { underLoad, live, rssAfterGcMb } = target.memory;
      say(
        `| ${fmt(target.size)} | ${fmt(underLoad.rate)} | ${fmt(underLoad.peakRssMb)} MB | ${mb(underLoad.used)} / ${mb(underLoad.total)} | ${mb(underLoad.newSpace)} | **${mb(live.used)}** | ${mb(live.external)} (${mb(live.arrayBuffers)}) | ${fmt(rssAfterGcMb)} MB |`,
      );
    }
    if (targets.length > 1) {
      const first = targets[0];
      const last = targets[targets.length - 1];
      const perHook = (last.memory.live.used - first.memory.live.used) / (last.size - first.size);
      say(`live heap per cached hook (${fmt(last.size)} against ${fmt(first.size)}): ${fmt(perHook)} bytes`);
      // Per round, so a change in background load between rounds cancels out.
      const ratios = last.results.calsync.map((rate, i) => rate / first.results.calsync[i]);
      const ratio = median(ratios);
      say('');
      say(
        `calsync throughput at ${fmt(last.size)} / at ${fmt(first.size)}: ${fmt(ratio, 3)} (rounds: ${ratios.map((x) => fmt(x, 3)).join(', ')}) (target: within 10%, i.e. >= 0.900) -> ${ratio >= 0.9 ? 'met' : 'NOT met'}`,
      );
    }
    const allRatios = targets.flatMap((target) => target.results.toHealth);
    const toHealth = median(allRatios);
    say(
      `calsync / plain unary health Check, all sizes: ${fmt(toHealth, 3)} (target >= 0.60) -> ${toHealth >= 0.6 ? 'met' : 'NOT met'}; every round's ratio: ${allRatios.map((x) => fmt(x, 3)).join(', ')}; spread ${fmt(spread(allRatios), 1)}% (rounds disagree by this much; the median is what should repeat within 5% from run to run)`,
    );
    const wrong = targets.reduce((sum, target) => sum + target.results.wrong, 0);
    say(`wrong or failed answers: ${wrong}${firstFailure ? ` (the first: ${firstFailure})` : ''}`);
    say(
      `machine: ${cpus().length} x ${cpus()[0]?.model ?? 'unknown cpu'}, node ${process.version}; took ${fmt((performance.now() - began) / 1000, 0)} s`,
    );
    say(
      `command: node scripts/bench/verify/run.mjs${Object.entries(env)
        .filter(([name]) => name.startsWith('BENCH_'))
        .map(([name, value]) => ` ${name}=${value}`)
        .join('')}`,
    );
    say(
      `subscription ran as: NODE_OPTIONS='${deployedNodeOptions.NODE_OPTIONS ?? ''}' node ${serviceNodeArgs.join(' ')} services/subscription/dist/main.js`,
    );
    say(`load average (1/5/15 min) at the start: ${startLoad}; at the end: ${loadAverage()}`);
    if (wrong > 0) process.exitCode = 1;
  } finally {
    await cleanups.run();
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
