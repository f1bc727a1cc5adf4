// Measures the delivery path gateway -> subscription (VerifyDeliveries stream, or VerifyAndResolveUser) ->
// JetStream (publish acknowledged) with 10,000 connected users, beside a bare Koa route that
// reads the body and answers 200, in the same run on the same machine. The gateway and the
// subscription service run as their built processes with production settings (log level info);
// the 10,000 users' webhook rows (each with its own sealed signing key) are seeded straight into
// a bench database through the subscription service's repository. The load generator signs
// every delivery as Calendly does, with the user's key and a fresh timestamp, and keeps
// `--concurrency` requests in flight over keep-alive connections for `--seconds`.
//
//   node scripts/bench/ingress/index.mjs [--users 10000] [--seconds 15] [--rounds 3] [--warmup-seconds 3]
//        [--concurrency 32] [--database-url postgres://...] [--nats-url nats://...] [--cpu-prof DIR]
//        [--verify-transport stream|unary|both] [--rate N]
//
// Each target (the bare route, each gateway) is measured for --seconds in all, split into
// --rounds rounds that take turns (bare, gateway, bare, gateway, ...): a machine whose speed
// drifts during the run (another tenant, CPU frequency) moves both sides of the ratio alike.
// Every target is warmed up for --warmup-seconds before its first round and for a second before
// each later one. The ratio is of the totals; each round's own ratio is printed beside it.
// CPU per delivery of each process is printed in ms and, as serverCpuToBare, as a multiple of the
// bare route's CPU per request in the same run: the machines this runs on differ up to 3x in speed
// (bare Koa 6,500 to 20,000/s), the multiple much less. Issue 17's targets, 0.25 ms for the gateway
// and 0.10 ms for subscription, were set where the bare route spent 0.05 ms: 5x and 2x.
//
// --rate N sends N deliveries a second (open loop, at most --concurrency in flight) instead of as
// many as the servers take, so p99 can be read at a given load; latency then counts from when a
// delivery was due, so a server falling behind shows in it.
//
// --verify-transport picks how the gateway asks subscription to verify (its VERIFY_TRANSPORT):
// `stream` (the default: deliveries batched onto one VerifyDeliveries stream) or `unary` (one
// VerifyAndResolveUser call each, as before the stream). `both` starts one gateway of each
// against the same subscription process and measures them in turn, unary first, in one run.
//
// Postgres and NATS come from the options, else CALSYNC_TEST_DATABASE_URL / CALSYNC_TEST_NATS_URL,
// else they are started locally (scripts/lib/local-infra.cjs). Everything listens on 127.0.0.1;
// the bench database and stream are removed at the end. Needs the services built:
//   npx tsc -p services/subscription/tsconfig.build.json && npx tsc -p services/gateway/tsconfig.build.json
import { spawn } from 'node:child_process';
import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const require = createRequire(import.meta.url);
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const { Pool: HttpPool } = require('undici');
const { Client } = require('pg');
const { connect } = require('nats');
const kit = require('@calsync/service-kit');
const { subscribedEvents } = require('@calsync/calendly-client');
const { inviteeCreatedBody } = require('@calsync/calendly-client/testing');
const { createThrowawayCa } = require('@calsync/service-kit/testing');
const { migrateSchema } = require('@calsync/subscription/dist/migrations');
const { createWebhookRepository } = require('@calsync/subscription/dist/webhooks/webhook-repository');
const { signingKeyContext } = require('@calsync/subscription/dist/webhooks/hook-loader');
const { callbackUrlOf, newHookId, newSigningKey } = require('@calsync/subscription/dist/webhooks/webhook-secrets');
const { freePort, startEmbeddedPostgres, startLocalNats } = require(join(root, 'scripts/lib/local-infra.cjs'));
const { createCleanup, printBenchHeader, processCpuSeconds, processRssMb } = require(
  join(root, 'scripts/lib/bench.cjs'),
);
const { nodeOptionsEnv } = require(join(root, 'scripts/lib/node-options.cjs'));

const { values } = parseArgs({
  options: {
    users: { type: 'string', default: '10000' },
    seconds: { type: 'string', default: '15' },
    rounds: { type: 'string', default: '3' },
    'warmup-seconds': { type: 'string', default: '3' },
    concurrency: { type: 'string', default: '32' },
    'database-url': { type: 'string' },
    'nats-url': { type: 'string' },
    // Writes V8 CPU profiles of the gateway and subscription processes into this folder.
    'cpu-prof': { type: 'string' },
    'verify-transport': { type: 'string', default: 'stream' },
    rate: { type: 'string' },
  },
});
const userCount = Number(values.users);
const seconds = Number(values.seconds);
const warmupSeconds = Number(values['warmup-seconds']);
const concurrency = Number(values.concurrency);
const rounds = Number(values.rounds);
if (!Number.isInteger(rounds) || rounds < 1) throw new Error('--rounds must be a whole number, at least 1');
const rate = values.rate === undefined ? undefined : Number(values.rate);
if (rate !== undefined && !(rate > 0)) throw new Error('--rate must be a positive number of deliveries a second');
const transports = values['verify-transport'] === 'both' ? ['unary', 'stream'] : [values['verify-transport']];
if (!transports.every((t) => t === 'stream' || t === 'unary')) {
  throw new Error('--verify-transport must be stream, unary or both');
}
if (![userCount, seconds, warmupSeconds, concurrency].every((n) => Number.isFinite(n) && n >= 0) || seconds > 600) {
  throw new Error('--users, --seconds (at most 600), --warmup-seconds and --concurrency must be numbers');
}

const header = printBenchHeader(root);
const workDir = mkdtempSync(join(tmpdir(), 'calsync-bench-ingress-'));
const cleanups = createCleanup();
cleanups.add(() => rmSync(workDir, { recursive: true, force: true }));
const log = kit.createLogger({ service: 'bench', level: 'warn' });
const say = (message) => process.stderr.write(`${message}\n`);

/** Runs `node <entry>` with its log in a file (so reading it costs the bench nothing) until it logs `ready`. */
async function startProcess(name, entry, env) {
  const logFile = join(workDir, `${name}.log`);
  const fd = openSync(logFile, 'w');
  const profile =
    values['cpu-prof'] && name !== 'bare-koa' ? ['--cpu-prof', `--cpu-prof-dir=${values['cpu-prof']}`] : [];
  // A calsync service runs with the chart's NODE_OPTIONS (heap limits): measured as deployed.
  const service = /services\/([^/]+)\/dist\/main\.js$/.exec(entry)?.[1];
  const nodeOptions = service ? nodeOptionsEnv(root, service) : {};
  const child = spawn(process.execPath, [...profile, entry], {
    env: { PATH: process.env.PATH ?? '', ...nodeOptions, ...env },
    stdio: ['ignore', fd, fd],
  });
  closeSync(fd);
  const exited = new Promise((resolve) => child.once('exit', resolve));
  cleanups.add(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const kill = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(kill);
    }
  });
  const deadline = Date.now() + 60_000;
  for (;;) {
    const ready = readFileSync(logFile, 'utf8')
      .split('\n')
      .map((line) => {
        try {
          return JSON.parse(line);
        } catch {
          return undefined;
        }
      })
      .find((line) => line?.msg === 'ready');
    if (ready) return { pid: child.pid, ready, logFile };
    if (child.exitCode !== null || Date.now() > deadline) {
      throw new Error(`${name} did not get ready:\n${readFileSync(logFile, 'utf8').slice(-3000)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Resident memory of a process now, in whole MB. */
const rssMbOf = (pid) => Math.round(processRssMb(pid));

function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** The next delivery for `user`, signed now with the user's key as Calendly signs. */
function nextDelivery(user) {
  const body = inviteeCreatedBody({ uri: user.calendlyUserUri, email: user.email, name: user.userId });
  const t = Math.floor(Date.now() / 1000);
  const v1 = createHmac('sha256', user.signingKey).update(`${t}.`).update(body).digest('hex');
  return { path: `/webhooks/calendly/${user.hookId}`, body, signature: `t=${t},v1=${v1}` };
}

/**
 * Keeps `concurrency` deliveries in flight against `origin` until `more()` says stop; records
 * each one's latency and answer.
 */
async function load({ origin, more, pick, pids, perSecond }) {
  const pool = new HttpPool(origin, { connections: concurrency, pipelining: 1 });
  const latencies = [];
  const answers = {};
  let errors = 0;
  const cpuBefore = pids.map(({ pid }) => processCpuSeconds(pid));
  // The largest resident set each server reaches while loaded, sampled every 250 ms.
  const peakRss = pids.map(({ pid }) => rssMbOf(pid));
  const sampler = setInterval(() => {
    pids.forEach(({ pid }, i) => {
      peakRss[i] = Math.max(peakRss[i] ?? 0, rssMbOf(pid) ?? 0);
    });
  }, 250);
  const started = performance.now();
  let sent = 0;
  const worker = async () => {
    while (more()) {
      let t0 = performance.now();
      if (perSecond) {
        // Due at a fixed schedule; waiting for it is not latency, falling behind it is. Timers
        // fire on the event loop's millisecond clock, up to a millisecond before `due`: a request
        // sent early counts from when it was sent, never from a time still to come.
        const due = started + (sent++ * 1000) / perSecond;
        if (due > t0) await new Promise((resolve) => setTimeout(resolve, due - t0));
        if (!more()) break;
        t0 = Math.min(due, performance.now());
      }
      const delivery = nextDelivery(pick());
      try {
        const response = await pool.request({
          path: delivery.path,
          method: 'POST',
          headers: {
            'content-type': 'application/json; charset=utf-8',
            'calendly-webhook-signature': delivery.signature,
          },
          body: delivery.body,
        });
        const text = await response.body.text();
        latencies.push(performance.now() - t0);
        const answer = response.statusCode === 200 ? JSON.parse(text).status : String(response.statusCode);
        answers[answer] = (answers[answer] ?? 0) + 1;
      } catch {
        errors += 1;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const elapsed = (performance.now() - started) / 1000;
  const cpu = pids.map(({ pid }, i) => processCpuSeconds(pid) - cpuBefore[i]);
  clearInterval(sampler);
  await pool.close();
  return { pids, latencies, answers, errors, elapsed, cpu, peakRss };
}

const round2 = (n) => (n === null ? null : Math.round(n * 100) / 100);
const round3 = (n) => Math.round(n * 1000) / 1000;

/** One figure for one or more measured rounds of the same target: totals, percentiles over all of them. */
function summarize(measured) {
  const latencies = measured.flatMap((m) => m.latencies).sort((a, b) => a - b);
  const elapsed = measured.reduce((sum, m) => sum + m.elapsed, 0);
  const answers = {};
  for (const m of measured)
    for (const [answer, n] of Object.entries(m.answers)) answers[answer] = (answers[answer] ?? 0) + n;
  const { pids } = measured[0];
  return {
    requests: latencies.length,
    answers,
    transportErrors: measured.reduce((sum, m) => sum + m.errors, 0),
    seconds: round2(elapsed),
    perSecond: Math.round(latencies.length / elapsed),
    p50Ms: round2(percentile(latencies, 50)),
    p99Ms: round2(percentile(latencies, 99)),
    serverCpuMsPerRequest: Object.fromEntries(
      pids.map(({ name }, i) => [
        name,
        round3((measured.reduce((sum, m) => sum + m.cpu[i], 0) * 1000) / Math.max(1, latencies.length)),
      ]),
    ),
    peakRssMb: Object.fromEntries(
      pids.map(({ name }, i) => [name, Math.max(...measured.map((m) => m.peakRss[i] ?? 0))]),
    ),
  };
}

/** Each server's CPU per request in `result` divided by the bare route's in `bare`. */
function cpuToBareOf(bare, result) {
  return Object.fromEntries(
    Object.entries(result.serverCpuMsPerRequest).map(([name, ms]) => [
      name,
      Math.round((ms / bare.serverCpuMsPerRequest.bareKoa) * 100) / 100,
    ]),
  );
}

/** A round of one target: warm up for `warmup` seconds, then measure for `measured`, drawing users at random. */
async function measureRound(origin, users, pids, { warmup, measured }) {
  const random = () => users[Math.floor(Math.random() * users.length)];
  const until = (s) => {
    const end = performance.now() + s * 1000;
    return () => performance.now() < end;
  };
  if (warmup > 0) await load({ origin, more: until(warmup), pick: random, pids, perSecond: rate });
  return load({ origin, more: until(measured), pick: random, pids, perSecond: rate });
}

try {
  // Infrastructure: given, or started here.
  let serverUrl = values['database-url'] ?? process.env.CALSYNC_TEST_DATABASE_URL;
  if (!serverUrl) {
    const postgres = await startEmbeddedPostgres({ dir: join(workDir, 'postgres') });
    cleanups.add(postgres.stop);
    serverUrl = postgres.url;
  }
  let natsUrl = values['nats-url'] ?? process.env.CALSYNC_TEST_NATS_URL;
  if (!natsUrl) {
    const nats = await startLocalNats({ dir: join(workDir, 'nats') });
    cleanups.add(nats.stop);
    natsUrl = nats.url;
  }
  const databaseName = `calsync_bench_ingress_${randomBytes(4).toString('hex')}`;
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
  const databaseUrl = Object.assign(new URL(serverUrl), { pathname: `/${databaseName}` }).toString();
  const prefix = `bench${randomBytes(4).toString('hex')}`;
  const names = kit.natsNames(prefix);
  cleanups.add(async () => {
    const nc = await connect({ servers: natsUrl });
    const jsm = await nc.jetstreamManager();
    for (const stream of [names.eventsStream, names.backfillStream]) await jsm.streams.delete(stream).catch(() => {});
    await nc.close();
  });

  // 10,000 connected users: one active per-user webhook each, with its own sealed signing key.
  const gatewayPort = await freePort();
  const gatewayUrl = `http://127.0.0.1:${gatewayPort}`;
  const sealingKey = randomBytes(32);
  const sealer = kit.createSealer({ keys: new Map([['bench', sealingKey]]), activeKeyId: 'bench' });
  await migrateSchema({ DATABASE_URL: databaseUrl, DATABASE_SCHEMA: 'subscription' }, log);
  const pool = kit.createPool({ url: databaseUrl, schema: 'subscription', log });
  const users = [];
  const rows = [];
  for (let i = 0; i < userCount; i += 1) {
    const hookId = newHookId();
    const signingKey = newSigningKey();
    const calendlyUserUri = `https://api.calendly.com/users/BENCH${String(i).padStart(6, '0')}`;
    users.push({ userId: `bench-user-${i}`, hookId, signingKey, calendlyUserUri, email: `host${i}@example.test` });
    rows.push({
      hookId,
      userId: `bench-user-${i}`,
      calendlyUserUri,
      calendlyOrganizationUri: `https://api.calendly.com/organizations/BENCHORG${i % 100}`,
      calendlySubscriptionUri: `https://api.calendly.com/webhook_subscriptions/${randomUUID()}`,
      callbackUrl: callbackUrlOf(gatewayUrl, hookId),
      events: [...subscribedEvents],
      state: 'active',
      signingKeySource: 'subscription',
      signingKeySealed: sealer.seal(signingKey, signingKeyContext(hookId)),
      lastVerifiedAt: new Date(),
    });
  }
  const seedStarted = performance.now();
  await createWebhookRepository(pool).insertMany(rows);
  const seedSeconds = (performance.now() - seedStarted) / 1000;
  await pool.end();
  say(`seeded ${userCount} users in ${seedSeconds.toFixed(1)} s`);

  const common = {
    NATS_URL: natsUrl,
    NATS_SUBJECT_PREFIX: prefix,
    LOG_LEVEL: 'info',
  };
  // The gateway calls subscription over mutual TLS, as in production.
  // Certificates re-read at the production default (30 s), not the tests' 1 s: each re-read
  // rebuilds the server's TLS context, a cost production does not pay once a second.
  const ca = await createThrowawayCa({ reloadIntervalMs: 30_000 });
  cleanups.add(async () => ca.remove());
  const subscription = await startProcess('subscription', join(root, 'services/subscription/dist/main.js'), {
    ...(await ca.env(kit.grpcIdentities.subscription)),
    ...common,
    DATABASE_URL: databaseUrl,
    GRPC_HOST: '127.0.0.1',
    GRPC_PORT: '0',
    METRICS_PORT: '0',
    SEALING_KEYS: `bench=${sealingKey.toString('base64')}`,
    SEALING_ACTIVE_KEY_ID: 'bench',
    // Nothing on the delivery path calls identity, meetings or Calendly.
    IDENTITY_ADDR: '127.0.0.1:1',
    MEETINGS_ADDR: '127.0.0.1:1',
    CALENDLY_API_URL: 'http://127.0.0.1:1',
    CALENDLY_AUTH_URL: 'http://127.0.0.1:1',
    PUBLIC_BASE_URL: gatewayUrl,
    RECONCILE_INTERVAL_SECONDS: '0',
  });
  const gateways = [];
  for (const transport of transports) {
    const port = gateways.length === 0 ? gatewayPort : await freePort();
    const url = `http://127.0.0.1:${port}`;
    const gateway = await startProcess(`gateway-${transport}`, join(root, 'services/gateway/dist/main.js'), {
      ...(await ca.env(kit.grpcIdentities.gateway)),
      ...common,
      HTTP_HOST: '127.0.0.1',
      HTTP_PORT: String(port),
      PUBLIC_BASE_URL: gatewayUrl,
      APP_URL: `${gatewayUrl}/`,
      IDENTITY_ADDR: '127.0.0.1:1',
      SUBSCRIPTION_ADDR: `127.0.0.1:${subscription.ready.grpcPort}`,
      MEETINGS_ADDR: '127.0.0.1:1',
      AUTH_JWT_SECRET: randomBytes(32).toString('base64url'),
      VERIFY_TRANSPORT: transport,
    });
    gateways.push({ transport, url, pid: gateway.pid });
  }
  const bare = await startProcess('bare-koa', join(root, 'scripts/bench/ingress/bare-koa.cjs'), {});

  // Every hook once, in order: the first delivery of each user loads its hook (and opens its key).
  const serversOf = (gateway) => [
    { name: 'gateway', pid: gateway.pid },
    { name: 'subscription', pid: subscription.pid },
  ];
  say(`gateway (${gateways[0].transport}): one delivery for each of ${userCount} users (cold hooks)`);
  let next = 0;
  const cold = summarize([
    await load({
      origin: gateways[0].url,
      more: () => next < users.length,
      pick: () => users[next++],
      pids: serversOf(gateways[0]),
    }),
  ]);

  const targets = [
    {
      name: 'bare Koa route',
      url: `http://127.0.0.1:${bare.ready.httpPort}`,
      pids: [{ name: 'bareKoa', pid: bare.pid }],
    },
    ...gateways.map((gateway) => ({
      name: `gateway (${gateway.transport})`,
      url: gateway.url,
      pids: serversOf(gateway),
    })),
  ];
  const roundSeconds = seconds / rounds;
  const measuredRounds = targets.map(() => []);
  for (let r = 0; r < rounds; r += 1) {
    for (const [i, target] of targets.entries()) {
      const warmup = r === 0 ? warmupSeconds : Math.min(1, warmupSeconds);
      say(`round ${r + 1}/${rounds}, ${target.name}: ${warmup} s warm-up, ${roundSeconds} s measured`);
      measuredRounds[i].push(await measureRound(target.url, users, target.pids, { warmup, measured: roundSeconds }));
    }
  }
  const perSecondOf = (m) => m.latencies.length / m.elapsed;
  const [bareResult, ...gatewayResults] = measuredRounds.map(summarize);
  const results = Object.fromEntries(gateways.map((gateway, i) => [gateway.transport, gatewayResults[i]]));
  const gatewayResult = results[transports.at(-1)];
  const lastGatewayRounds = measuredRounds.at(-1);
  const roundRatios = measuredRounds[0].map(
    (bareRound, r) => Math.round((perSecondOf(lastGatewayRounds[r]) / perSecondOf(bareRound)) * 1000) / 1000,
  );
  const nc = await connect({ servers: natsUrl });
  const info = await (await nc.jetstreamManager()).streams.info(names.eventsStream);
  await nc.close();
  const storedAnswers = [cold, ...Object.values(results)].reduce((sum, r) => sum + (r.answers.stored ?? 0), 0);

  console.log(
    JSON.stringify(
      {
        users: userCount,
        concurrency,
        rounds,
        ...(rate ? { rate } : {}),
        seedSeconds: Math.round(seedSeconds * 10) / 10,
        bareKoa: bareResult,
        gatewayColdHooks: cold,
        verifyTransport: transports.join(','),
        gateway: gatewayResult,
        gatewayToBareThroughput: Math.round((gatewayResult.perSecond / bareResult.perSecond) * 1000) / 1000,
        gatewayToBareThroughputByRound: roundRatios,
        // CPU per delivery of each calsync process as a multiple of the bare route's CPU per request
        // in the same run: machines here differ up to 3x in speed, and these multiples do not.
        serverCpuToBare: cpuToBareOf(bareResult, gatewayResult),
        gatewayToBareP50: Math.round((gatewayResult.p50Ms / bareResult.p50Ms) * 10) / 10,
        gatewayToBareP99: Math.round((gatewayResult.p99Ms / bareResult.p99Ms) * 10) / 10,
        ...(transports.length > 1
          ? {
              gatewayUnary: results.unary,
              unaryToBareThroughput: Math.round((results.unary.perSecond / bareResult.perSecond) * 1000) / 1000,
              streamToUnaryThroughput: Math.round((results.stream.perSecond / results.unary.perSecond) * 100) / 100,
            }
          : {}),
        // Warm-up deliveries are stored too, so the stream holds at least what was answered "stored".
        streamMessages: info.state.messages,
        storedAnswersMeasured: storedAnswers,
        measured:
          "keep-alive HTTP/1.1 over loopback; latency from request start to full answer; serverCpuMsPerRequest is CPU time per request of each server process (not of NATS or Postgres); serverCpuToBare divides it by the bare route's",
        command: header.command,
        machine: header.machine,
        loadAverageBefore: header.loadAverageBefore,
        loadAverageAfter: loadavg().map((n) => Number(n.toFixed(2))),
        cores: cpus().length,
        node: process.version,
      },
      null,
      2,
    ),
  );
  const failed = [bareResult, cold, ...Object.values(results)].some(
    (r) => r.transportErrors > 0 || Object.keys(r.answers).some((a) => !['stored', 'duplicate'].includes(a)),
  );
  process.exitCode = failed || info.state.messages < storedAnswers ? 1 : 0;
} finally {
  await cleanups.run();
}
