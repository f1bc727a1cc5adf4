// What a newcomer meets before anything runs: `npm run dev` and `npm test` check this machine
// first and say, one line each, what is missing and how to fix it.
import { execFile } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { rootDir } from './system-harness';

interface Outcome {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runNode(script: string, env: Record<string, string>, args: string[] = []): Promise<Outcome> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      [join(rootDir, script), ...args],
      { cwd: rootDir, env: { ...process.env, ...env }, timeout: 30_000 },
      (_error, stdout, stderr) => resolve({ code: child.exitCode, stdout, stderr }),
    );
  });
}

async function listenAnywhere(): Promise<{ server: Server; port: number }> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (typeof address !== 'object' || address === null) throw new Error('no address');
  return { server, port: address.port };
}

describe('npm run dev', () => {
  // Nothing kept from an earlier run may add its own complaint.
  const noState = join(rootDir, 'test-results', 'no-dev-state');
  let taken: { server: Server; port: number };
  beforeAll(async () => {
    taken = await listenAnywhere();
  });
  afterAll(() => new Promise<void>((resolve) => taken.server.close(() => resolve())));

  test('refuses a gateway port already in use before building anything, naming the port and its variable', async () => {
    const outcome = await runNode('scripts/dev.mjs', {
      GATEWAY_PORT: String(taken.port),
      SIM_PORT: '0',
      CALSYNC_DEV_DIR: noState,
    });
    expect(outcome.code).toBe(1);
    expect(outcome.stderr).toContain(`port ${taken.port} is already in use`);
    expect(outcome.stderr).toContain('GATEWAY_PORT');
    // Nothing was built or started: the refusal is the only thing it said.
    expect(outcome.stderr.trim().split('\n')).toHaveLength(1);
  });

  test('refuses a simulator port already in use, naming SIM_PORT', async () => {
    const outcome = await runNode('scripts/dev.mjs', {
      GATEWAY_PORT: '0',
      SIM_PORT: String(taken.port),
      CALSYNC_DEV_DIR: noState,
    });
    expect(outcome.code).toBe(1);
    expect(outcome.stderr).toMatch(new RegExp(`port ${taken.port} .*SIM_PORT`));
  });
});

describe('npm run dev:token', () => {
  test('signs a token for any user id with the dev gateway secret', async () => {
    const outcome = await runNode('scripts/dev-token.mjs', { AUTH_JWT_SECRET: 'a-secret-for-this-test' }, ['dave']);
    expect(outcome.code).toBe(0);
    const token = outcome.stdout.trim();
    const payload = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as { sub: string };
    expect(payload.sub).toBe('dave');
    const [head, body, signature] = token.split('.');
    expect(createHmac('sha256', 'a-secret-for-this-test').update(`${head}.${body}`).digest('base64url')).toBe(
      signature,
    );
  });

  test('without a user id, says how to call it', async () => {
    const outcome = await runNode('scripts/dev-token.mjs', {});
    expect(outcome.code).toBe(1);
    expect(outcome.stderr).toContain('usage: npm run dev:token -- <user id>');
  });
});

describe('npm test', () => {
  test('names a missing Chromium and how to get it before anything builds', async () => {
    const outcome = await runNode('scripts/test-infra/preflight.mjs', { CHROMIUM_PATH: '/nonexistent/chromium' });
    expect(outcome.code).toBe(1);
    expect(outcome.stderr.trim()).toBe(
      "npm test cannot run: Chromium is not at /nonexistent/chromium (the demo's browser test drives it): `sudo apt-get install chromium` (Debian/Ubuntu), or set CHROMIUM_PATH to a Chromium or Chrome binary",
    );
  });

  test('passes quietly on a machine that has everything', async () => {
    const outcome = await runNode('scripts/test-infra/preflight.mjs', {});
    expect(outcome).toMatchObject({ code: 0, stderr: '' });
  });
});
