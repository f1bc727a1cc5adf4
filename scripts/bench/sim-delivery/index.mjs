// Measures how many signed webhooks per second the Calendly simulator delivers to a local
// receiver. The simulator runs in-process; the outside world (world.mjs: a bare node:http
// receiver that HMAC-checks every delivery, and the load generator that books meetings through
// the control API as tests do) runs in a worker thread by default, as those are other processes
// in a real load test, or on the simulator's own thread with `--world main` (the strictest
// figure). Each user has a user-scoped subscription and each organization's owner an
// organization-scoped one, so every booking fans out to two deliveries. The clock runs from the
// first booking request to the last verified delivery, so booking work counts against the
// simulator.
//
//   node scripts/bench/sim-delivery/index.mjs [--bookings 10000] [--users 50] [--orgs 5] [--concurrency 32] [--world worker|main]
//
// Needs the simulator built: npx tsc -p services/calendly-sim/tsconfig.build.json
import { createRequire } from 'node:module';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import { createWorld } from './world.mjs';

const require = createRequire(import.meta.url);
const { startSimulator } = require('@calsync/calendly-sim');
// Everything runs in this process (the world in a worker thread): nothing outlives it.
require('../../lib/bench.cjs').printBenchHeader(new URL('../../..', import.meta.url).pathname);

const { values } = parseArgs({
  options: {
    bookings: { type: 'string', default: '10000' },
    users: { type: 'string', default: '50' },
    orgs: { type: 'string', default: '5' },
    concurrency: { type: 'string', default: '32' },
    world: { type: 'string', default: 'worker' },
    'timeout-seconds': { type: 'string', default: '120' },
  },
});
const bookings = Number(values.bookings);
const userCount = Number(values.users);
const orgCount = Number(values.orgs);

/** The world behind one interface, wherever it runs. */
async function startWorld(where) {
  if (where === 'main') return createWorld();
  const worker = new Worker(new URL('./world.mjs', import.meta.url));
  const waiting = new Map();
  worker.on('message', (message) => waiting.get(message.type)?.(message));
  worker.on('error', (error) => {
    console.error(error);
    process.exit(1);
  });
  const next = (type) => new Promise((resolve) => waiting.set(type, resolve));
  const { url } = await next('ready');
  return {
    url,
    setKey: (path, key) => worker.postMessage({ type: 'key', path, key }),
    run(options) {
      const result = next('result');
      worker.postMessage({ type: 'run', ...options });
      return result;
    },
    async close() {
      const exited = new Promise((resolve) => worker.once('exit', resolve));
      worker.postMessage({ type: 'close' });
      await exited;
    },
  };
}

const world = await startWorld(values.world);
const sim = await startSimulator({ settings: { apiRequestsPerUserPerMinute: 1_000_000 } });

async function call(method, path, body, token) {
  const response = await fetch(`${sim.url}${path}`, {
    method,
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
  return JSON.parse(text);
}

const hosts = [];
let subscriptions = 0;
for (let i = 0; i < userCount; i += 1) {
  const user = await call('POST', '/_sim/users', {
    name: `Bench User ${i}`,
    email: `bench${i}@example.test`,
    organization: `Bench Org ${i % orgCount}`,
  });
  hosts.push(user.uri);
  const hooks = [{ path: `/hooks/user/${i}`, scope: 'user' }];
  if (user.role === 'owner') hooks.push({ path: `/hooks/org/${i % orgCount}`, scope: 'organization' });
  for (const hook of hooks) {
    const key = `key-${hook.path}`;
    world.setKey(hook.path, key);
    await call(
      'POST',
      '/webhook_subscriptions',
      {
        url: `${world.url}${hook.path}`,
        events: ['invitee.created'],
        organization: user.organization,
        scope: hook.scope,
        ...(hook.scope === 'user' ? { user: user.uri } : {}),
        signing_key: key,
      },
      user.personal_access_token,
    );
    subscriptions += 1;
  }
}

const expectedDeliveries = bookings * 2;
const cpuAtStart = process.cpuUsage();
const result = await world.run({
  simUrl: sim.url,
  hosts,
  bookings,
  concurrency: Number(values.concurrency),
  expectedDeliveries,
  timeoutMs: Number(values['timeout-seconds']) * 1000,
});
// Process CPU over every thread: on a shared machine it shows how much the run actually got.
const cpu = process.cpuUsage(cpuAtStart);
const cpuSeconds = (cpu.user + cpu.system) / 1e6;
const received = result.verified + result.rejected;

console.log(
  JSON.stringify(
    {
      bookings,
      users: userCount,
      organizations: orgCount,
      subscriptions,
      world:
        values.world === 'main'
          ? 'receiver and load generator on the simulator thread'
          : 'receiver and load generator in a worker thread',
      deliveriesExpected: expectedDeliveries,
      deliveriesReceived: received,
      signaturesVerified: result.verified,
      signaturesRejected: result.rejected,
      seconds: Number(result.seconds.toFixed(3)),
      bookingCallsPerSecond: Math.round(bookings / result.bookingSeconds),
      deliveriesPerSecond: Math.round(received / result.seconds),
      cpuSeconds: Number(cpuSeconds.toFixed(3)),
      deliveriesPerCpuSecond: Math.round(received / cpuSeconds),
      loadAverageAfter: loadavg().map((n) => Number(n.toFixed(2))),
      measured: 'wall time from the first POST /_sim/bookings to the last delivery received and HMAC-checked',
      node: process.version,
      timedOut: result.timedOut,
    },
    null,
    2,
  ),
);
await sim.stop();
await world.close();
process.exitCode = result.timedOut || result.rejected > 0 ? 1 : 0;
