// Where `npm run dev` keeps its state between runs, so a demo user who connected Calendly finds
// the connection, the webhook and the meetings again after Ctrl-C and a restart: the embedded
// Postgres data, the JetStream store, the simulator's state (it is everyone's Calendly), and the
// secrets the stored data is sealed and signed with. `npm run dev -- --fresh` empties it.
'use strict';
const { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } = require('node:fs');
const { join, relative } = require('node:path');
const { devSecrets } = require('./system.cjs');

/** The files and folders of the dev state: `.calsync-dev/` under `rootDir`, or CALSYNC_DEV_DIR. */
function devStatePaths(rootDir) {
  const dir = process.env.CALSYNC_DEV_DIR || join(rootDir, '.calsync-dev');
  return {
    dir,
    shown: `${relative(process.cwd(), dir) || '.'}/`,
    info: join(dir, 'state.json'),
    secrets: join(dir, 'secrets.json'),
    postgres: join(dir, 'postgres'),
    nats: join(dir, 'nats'),
    simulator: join(dir, 'simulator.state'),
    demo: join(dir, 'demo'),
  };
}

function readJson(path) {
  return existsSync(path) ? JSON.parse(readFileSync(path, 'utf8')) : undefined;
}

/**
 * Why the kept state cannot be used with these ports, or null. Calendly URIs name the
 * simulator's port and the webhooks at Calendly name the gateway's, so both must stay.
 */
function portsProblem(rootDir, ports) {
  const saved = readJson(devStatePaths(rootDir).info);
  if (!saved) return null;
  const changed = ports.filter(({ variable, port }) => saved.ports[variable] !== port);
  if (changed.length === 0) return null;
  const was = Object.entries(saved.ports)
    .map(([variable, port]) => `${variable}=${port}`)
    .join(' ');
  return (
    `the kept dev state in ${devStatePaths(rootDir).shown} ran with ${was} (its Calendly URIs and webhooks name them): ` +
    `use those ports, or start empty on new ones with \`npm run dev -- --fresh\``
  );
}

/** Deletes the kept state. */
function forgetDevState(rootDir) {
  rmSync(devStatePaths(rootDir).dir, { recursive: true, force: true });
}

/**
 * Opens the kept state, or makes a new one with fresh secrets. Resolves
 * { paths, kept, createdAt, secrets } (secrets without jwtSecret: that one comes from dev-jwt).
 */
function openDevState(rootDir, ports) {
  const paths = devStatePaths(rootDir);
  mkdirSync(paths.dir, { recursive: true });
  const saved = readJson(paths.info);
  const secrets = saved && readJson(paths.secrets);
  if (saved && secrets) return { paths, kept: true, createdAt: saved.createdAt, secrets };
  // A state without its secrets cannot be opened (everything sealed would be unreadable): start over.
  forgetDevState(rootDir);
  mkdirSync(paths.dir, { recursive: true });
  const { jwtSecret: _unused, ...fresh } = devSecrets();
  const createdAt = new Date().toISOString();
  writeFileSync(paths.secrets, JSON.stringify(fresh, null, 2), { mode: 0o600 });
  writeFileSync(
    paths.info,
    JSON.stringify(
      { createdAt, ports: Object.fromEntries(ports.map(({ variable, port }) => [variable, port])) },
      null,
      2,
    ),
  );
  return { paths, kept: false, createdAt, secrets: fresh };
}

module.exports = { devStatePaths, forgetDevState, openDevState, portsProblem };
