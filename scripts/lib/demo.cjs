'use strict';
// Prepares the demo page for a running system: copies the static files and writes config.js
// with demo users created at the simulator and their dev sign-in tokens. Used by `npm run dev`
// and by the browser test, so both show the same page.
const { cpSync, mkdirSync, writeFileSync } = require('node:fs');
const { join } = require('node:path');
const { signDevJwt } = require('./dev-jwt.cjs');

const demoUsers = [
  { id: 'alice', name: 'Alice Adviser', email: 'alice@example.test' },
  { id: 'bob', name: 'Bob Broker', email: 'bob@example.test' },
  { id: 'carol', name: 'Carol Counsel', email: 'carol@example.test' },
];

/** Copies scripts/demo into `demoDir` (served by the gateway at /demo/). */
function copyDemoPage(rootDir, demoDir) {
  mkdirSync(demoDir, { recursive: true });
  cpSync(join(rootDir, 'scripts', 'demo'), demoDir, { recursive: true });
}

/**
 * Creates the demo users at the simulator (or finds them there, when its state was kept from an
 * earlier run) and writes the page's config; resolves the users.
 */
async function writeDemoConfig({ demoDir, gatewayUrl, simulatorUrl, jwtSecret }) {
  const listed = await fetch(`${simulatorUrl}/_sim/users`);
  if (!listed.ok) throw new Error(`listing the simulator's users: ${listed.status}`);
  const existing = (await listed.json()).collection;
  const users = [];
  for (const user of demoUsers) {
    const known = existing.find((candidate) => candidate.email === user.email);
    if (known) {
      users.push({ ...user, token: signDevJwt(user.id, jwtSecret), calendly: known });
      continue;
    }
    const response = await fetch(`${simulatorUrl}/_sim/users`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: user.name, email: user.email, plan: 'standard' }),
    });
    if (!response.ok) throw new Error(`creating demo user ${user.id} at the simulator: ${response.status}`);
    users.push({ ...user, token: signDevJwt(user.id, jwtSecret), calendly: await response.json() });
  }
  const config = { gateway: gatewayUrl, simulator: simulatorUrl, users };
  writeFileSync(join(demoDir, 'config.js'), `window.CALSYNC_DEMO = ${JSON.stringify(config, null, 2)};\n`);
  return users;
}

module.exports = { copyDemoPage, writeDemoConfig };
