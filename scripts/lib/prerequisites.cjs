// What `npm test` and `npm run dev` need from this machine, checked before anything builds or
// starts, so a newcomer learns in a second (not after a full run) what to install.
// One check per prerequisite, each answering null (fine) or one line: what is missing and how to get it.
'use strict';
const { accessSync, constants, existsSync, readFileSync } = require('node:fs');
const { join } = require('node:path');
const { findNatsServer } = require('./local-infra.cjs');

const rootDir = join(__dirname, '..', '..');

/** Where the browser test finds Chromium: CHROMIUM_PATH, else Debian's package. */
const chromiumPath = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

function checkNode() {
  const { engines } = JSON.parse(readFileSync(join(rootDir, 'package.json'), 'utf8'));
  // semver is a dev dependency: without node_modules, checkInstalled says what to do first.
  if (!existsSync(join(rootDir, 'node_modules', 'semver'))) return null;
  const semver = require('semver');
  if (semver.satisfies(process.version, engines.node)) return null;
  return `Node ${process.version} is not supported (package.json wants ${engines.node}): install Node 22 LTS, e.g. from https://nodejs.org or with nvm (\`nvm install 22\`)`;
}

function checkInstalled() {
  if (existsSync(join(rootDir, 'node_modules', '.package-lock.json'))) return null;
  return 'dependencies are not installed: run `npm ci` first';
}

function checkNatsServer(env) {
  if (env.natsUrl || findNatsServer()) return null;
  return 'nats-server is not installed: `sudo apt-get install nats-server` (Debian/Ubuntu), `brew install nats-server` (macOS), or set NATS_URL to a NATS with JetStream';
}

function checkChromium() {
  try {
    accessSync(chromiumPath, constants.X_OK);
    return null;
  } catch {
    return `Chromium is not at ${chromiumPath} (the demo's browser test drives it): \`sudo apt-get install chromium\` (Debian/Ubuntu), or set CHROMIUM_PATH to a Chromium or Chrome binary`;
  }
}

/**
 * Every missing prerequisite, one line each. `for`: 'test' (npm test) or 'dev' (npm run dev).
 * NATS is needed unless a URL is given: the test harness falls back to a local nats-server
 * whenever Docker cannot give it one, so that fallback must be there.
 */
function missingPrerequisites(purpose) {
  const checks =
    purpose === 'test'
      ? [
          checkNode,
          checkInstalled,
          () => checkNatsServer({ natsUrl: process.env.CALSYNC_TEST_NATS_URL }),
          checkChromium,
        ]
      : [checkNode, checkInstalled, () => checkNatsServer({ natsUrl: process.env.NATS_URL })];
  return checks.map((check) => check()).filter((line) => line !== null);
}

module.exports = { chromiumPath, missingPrerequisites };
