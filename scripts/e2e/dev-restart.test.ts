// `npm run dev` keeps what a person did across Ctrl-C and a restart (the connection, its webhook
// at the simulator, the meetings), says so when it starts, and starts empty with `-- --fresh`.
// The real script, as a process, twice over one state folder.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SimUser } from '@calsync/calendly-sim/testing';
import { eventually, http, rootDir } from './system-harness';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { freePort } = require('../lib/local-infra.cjs') as { freePort(): Promise<number> };
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { devJwtSecret, signDevJwt } = require('../lib/dev-jwt.cjs') as typeof import('../lib/dev-jwt.cjs');

interface Dev {
  child: ChildProcess;
  output: () => string;
}

const stateDir = mkdtempSync(join(tmpdir(), 'calsync-dev-state-'));
let ports: { GATEWAY_PORT: string; SIM_PORT: string };
let running: Dev | undefined;

beforeAll(async () => {
  ports = { GATEWAY_PORT: String(await freePort()), SIM_PORT: String(await freePort()) };
});

afterAll(async () => {
  if (running) await stopDev(running);
  rmSync(stateDir, { recursive: true, force: true });
});

async function startDev(...args: string[]): Promise<Dev> {
  let output = '';
  const child = spawn(process.execPath, [join(rootDir, 'scripts', 'dev.mjs'), ...args], {
    cwd: rootDir,
    env: { ...process.env, ...ports, CALSYNC_DEV_DIR: stateDir, DATABASE_URL: '', NATS_URL: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const dev = { child, output: () => output };
  running = dev;
  await new Promise<void>((resolve, reject) => {
    const read = (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('Ctrl-C stops everything.')) resolve();
    };
    child.stdout!.on('data', read);
    child.stderr!.on('data', read);
    child.once('exit', (code) => reject(new Error(`npm run dev exited ${code} before it was running:\n${output}`)));
  });
  return dev;
}

async function stopDev(dev: Dev): Promise<void> {
  if (dev.child.exitCode !== null) return;
  const exited = new Promise((resolve) => dev.child.once('exit', resolve));
  dev.child.kill('SIGINT');
  await exited;
  running = undefined;
}

const gateway = () => `http://127.0.0.1:${ports.GATEWAY_PORT}`;
const simulator = () => `http://127.0.0.1:${ports.SIM_PORT}`;
const alice = () => signDevJwt('alice', devJwtSecret());

interface Meetings {
  meetings: { invitees: { name: string }[] }[];
}

test('a connection and its meetings outlive a restart, and --fresh starts empty', async () => {
  const first = await startDev();
  expect(first.output()).toContain('dev state: new and empty');
  const users = await http<{ collection: SimUser[] }>(`${simulator()}/_sim/users`);
  const calendlyAlice = users.body.collection.find((user) => user.email === 'alice@example.test')!;
  await http(`${gateway()}/api/calendly/token`, {
    method: 'POST',
    token: alice(),
    body: { token: calendlyAlice.personal_access_token },
  });
  await http(`${simulator()}/_sim/bookings`, {
    method: 'POST',
    body: {
      user: calendlyAlice.uri,
      invitee: { name: 'Kept Kim', email: 'kim@example.test' },
      start_time: new Date(Date.now() + 86_400_000).toISOString(),
      end_time: new Date(Date.now() + 86_400_000 + 1_800_000).toISOString(),
    },
  });
  await eventually(async () => {
    const { body } = await http<Meetings>(`${gateway()}/api/meetings`, { token: alice() });
    expect(body.meetings.flatMap((meeting) => meeting.invitees.map((invitee) => invitee.name))).toEqual(['Kept Kim']);
  });
  await stopDev(first);

  const second = await startDev();
  expect(second.output()).toContain('dev state: kept from the first run on');
  // The same demo user at the simulator, not a second Alice.
  const again = await http<{ collection: SimUser[] }>(`${simulator()}/_sim/users`);
  expect(again.body.collection.filter((user) => user.email === 'alice@example.test')).toHaveLength(1);
  const connection = await http<{ connected: boolean; webhook: { state: string } }>(
    `${gateway()}/api/calendly/connection`,
    { token: alice() },
  );
  expect(connection.body).toMatchObject({ connected: true, webhook: { state: 'active' } });
  // The webhook at the simulator still reaches the restarted gateway: a new booking arrives.
  await http(`${simulator()}/_sim/bookings`, {
    method: 'POST',
    body: {
      user: calendlyAlice.uri,
      invitee: { name: 'After Ada', email: 'ada@example.test' },
      start_time: new Date(Date.now() + 2 * 86_400_000).toISOString(),
      end_time: new Date(Date.now() + 2 * 86_400_000 + 1_800_000).toISOString(),
    },
  });
  await eventually(async () => {
    const { body } = await http<Meetings>(`${gateway()}/api/meetings`, { token: alice() });
    const names = body.meetings.flatMap((meeting) => meeting.invitees.map((invitee) => invitee.name));
    expect(names.sort()).toEqual(['After Ada', 'Kept Kim']);
  });
  await stopDev(second);

  const third = await startDev('--fresh');
  expect(third.output()).toContain('dev state: new and empty');
  const emptied = await http<{ connected: boolean }>(`${gateway()}/api/calendly/connection`, { token: alice() });
  expect(emptied.body.connected).toBe(false);
  const none = await http<Meetings>(`${gateway()}/api/meetings`, { token: alice() });
  expect(none.body.meetings).toEqual([]);
  await stopDev(third);
}, 600_000);

test('refuses to open kept state with other ports, naming them and --fresh', async () => {
  const outcome = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
    let stderr = '';
    const child = spawn(process.execPath, [join(rootDir, 'scripts', 'dev.mjs')], {
      cwd: rootDir,
      env: { ...process.env, GATEWAY_PORT: '0', SIM_PORT: '0', CALSYNC_DEV_DIR: stateDir },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('exit', (code) => resolve({ code, stderr }));
  });
  expect(outcome.code).toBe(1);
  expect(outcome.stderr).toContain(`ran with GATEWAY_PORT=${ports.GATEWAY_PORT} SIM_PORT=${ports.SIM_PORT}`);
  expect(outcome.stderr).toContain('npm run dev -- --fresh');
});
