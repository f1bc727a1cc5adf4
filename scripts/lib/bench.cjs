// What every bench under scripts/bench shares: the header that says how and where it ran, and
// one list of things to stop that runs on every way out (done, error, Ctrl-C, SIGTERM), so a
// failed bench never leaves nats-server, Postgres or a service running.
'use strict';
const { readdirSync, readFileSync } = require('node:fs');
const { join } = require('node:path');
const { cpus, loadavg, totalmem, platform, release } = require('node:os');
const { relative } = require('node:path');
const { request } = require('undici');

/** Prints the command as typed, the machine and its load average, to stderr. */
function printBenchHeader(rootDir) {
  const script = relative(rootDir, process.argv[1] ?? '');
  const command = ['node', script, ...process.argv.slice(2)].join(' ');
  const cores = cpus();
  const machine = `${cores.length} x ${cores[0]?.model ?? 'unknown cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB, ${platform()} ${release()}, node ${process.version}`;
  const load = loadavg()
    .map((n) => n.toFixed(2))
    .join(' ');
  process.stderr.write(`command: ${command}\nmachine: ${machine}\nload average (1/5/15 min): ${load}\n`);
  return { command, machine, loadAverageBefore: loadavg().map((n) => Number(n.toFixed(2))) };
}

/**
 * A list of stops run last-in first-out, once, however the bench ends: `run()` at the end of
 * a normal run, or by itself on SIGINT/SIGTERM (then exit 130/143) or an uncaught error (exit 1).
 */
function createCleanup(say = (message) => process.stderr.write(`${message}\n`)) {
  const stops = [];
  let running;
  const run = () => {
    running ??= (async () => {
      for (const stop of stops.splice(0).reverse())
        await Promise.resolve()
          .then(stop)
          .catch((error) => say(`cleanup: ${error}`));
    })();
    return running;
  };
  const exitAfterCleanup = (code) => {
    // A second signal, or a cleanup that hangs, still ends the bench (each service gets 15 s
    // to stop before it is killed, one after the other).
    setTimeout(() => process.exit(code), 120_000).unref();
    void run().finally(() => process.exit(code));
  };
  const onSignal = (signal) => {
    if (running) process.exit(signal === 'SIGINT' ? 130 : 143);
    say(`${signal}: stopping everything the bench started`);
    exitAfterCleanup(signal === 'SIGINT' ? 130 : 143);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const onFatal = (error) => {
    say(`bench failed: ${error?.stack ?? error}`);
    exitAfterCleanup(1);
  };
  process.on('uncaughtException', onFatal);
  process.on('unhandledRejection', onFatal);
  return {
    /** Registers a stop (sync or async). */
    add: (stop) => stops.push(stop),
    run,
  };
}

/** A /proc/<pid>/stat line's command name and CPU seconds (user + system) so far. */
function readStat(stat) {
  // The command name is in parentheses and may hold spaces; the fields follow it.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return {
    command: stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')),
    cpuSeconds: (Number(fields[11]) + Number(fields[12])) / 100,
    // What its children used before they exited and it waited for them (cutime + cstime).
    reapedChildrenCpuSeconds: (Number(fields[13]) + Number(fields[14])) / 100,
  };
}

/** CPU seconds (user + system) a process has used so far, from /proc (Linux). */
function processCpuSeconds(pid) {
  return readStat(readFileSync(`/proc/${pid}/stat`, 'utf8')).cpuSeconds;
}

/** A process's resident memory now, in MB, from /proc (Linux); 0 once it has none. */
function processRssMb(pid) {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
}

/** CPU seconds (user + system) a process has used so far, and its resident memory, from /proc (Linux). */
function processUsage(pid) {
  return { cpuSeconds: processCpuSeconds(pid), rssMb: processRssMb(pid) };
}

/** The whole machine's CPU time so far, in clock ticks: all of it, and the part not idle (from /proc/stat). */
function machineCpu() {
  const ticks = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal (guest time is already counted in user)
  const [user, nice, system, idle, iowait, irq, softirq, steal] = ticks;
  const idleTicks = idle + iowait;
  const total = user + nice + system + idleTicks + irq + softirq + steal;
  return { total, busy: total - idleTicks };
}

/**
 * CPU seconds used so far by every running process whose command name is `name` (e.g.
 * `postgres`, whose every connection is a process of its own), from /proc, with what their
 * exited children used: a Postgres backend that closes mid-run (a pool's idle connection) moves
 * its time into the postmaster's reaped-children time, so the sum only grows and a difference
 * counts it. (Counted from the processes alone, one closing connection could make Postgres read
 * 0% for a whole rate.)
 */
function cpuSecondsOfCommand(name) {
  let seconds = 0;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const { command, cpuSeconds, reapedChildrenCpuSeconds } = readStat(readFileSync(`/proc/${entry}/stat`, 'utf8'));
      if (command === name) seconds += cpuSeconds + reapedChildrenCpuSeconds;
    } catch {
      // It exited while we looked.
    }
  }
  return seconds;
}

/**
 * The Postgres and NATS a bench runs on: DATABASE_URL and NATS_URL when set, else an embedded
 * Postgres and a nats-server of its own under `dir` (made under `scratchRoot`, the temp folder
 * unless given), each stopped by `cleanup`. With
 * `databasePrefix`, a database of its own is made there (dropped by `cleanup`), so nothing the
 * bench writes meets another run's rows; `databaseUrl` then names it.
 */
async function benchInfra({ dir, cleanup, databasePrefix, scratchRoot }) {
  const localInfra = require('./local-infra.cjs');
  let databaseUrl = process.env.DATABASE_URL;
  if (!databaseUrl) {
    const postgres = await localInfra.startEmbeddedPostgres({ dir: join(dir, 'postgres'), scratchRoot });
    cleanup.add(postgres.stop);
    databaseUrl = postgres.url;
  }
  let natsUrl = process.env.NATS_URL;
  if (!natsUrl) {
    const nats = await localInfra.startLocalNats({ dir: join(dir, 'nats') });
    cleanup.add(nats.stop);
    natsUrl = nats.url;
  }
  if (databasePrefix) {
    const { Client } = require('pg');
    const admin = new Client({ connectionString: databaseUrl });
    await admin.connect();
    const name = `${databasePrefix}_${Date.now().toString(36)}`;
    await admin.query(`CREATE DATABASE ${name}`);
    cleanup.add(async () => {
      await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.end();
    });
    const own = new URL(databaseUrl);
    own.pathname = `/${name}`;
    databaseUrl = own.toString();
  }
  return { databaseUrl, natsUrl };
}

/**
 * A JSON call to the system under test (gateway or simulator): `body` is sent as JSON, `token`
 * as a bearer token; any non-2xx answer throws with its status and body. 204 gives null.
 * Through undici's request over kept-alive connections, not fetch: a bench booking hundreds a
 * second should spend the machine's CPU on the system it measures, and fetch costs several times
 * as much per call.
 */
async function json(url, { method = 'GET', body, token } = {}) {
  const response = await request(url, {
    method,
    headers: {
      ...(body ? { 'content-type': 'application/json' } : {}),
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await response.body.text();
  if (response.statusCode < 200 || response.statusCode > 299)
    throw new Error(`${method} ${url}: ${response.statusCode} ${text}`);
  return response.statusCode === 204 ? null : JSON.parse(text);
}

module.exports = {
  printBenchHeader,
  createCleanup,
  processCpuSeconds,
  processRssMb,
  processUsage,
  machineCpu,
  cpuSecondsOfCommand,
  benchInfra,
  json,
};
