import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { grpcIdentities } from '@calsync/service-kit';
import { spawnService, testGrpcEnv, testNatsUrl, testSubjectPrefix } from '@calsync/service-kit/testing';
import { jwtSecret, localInfra } from './harness';

// The built entry point, as the container runs it.
const entry = join(__dirname, '..', 'dist', 'main.js');

let tls: Record<string, string> = {};
beforeAll(async () => {
  tls = await testGrpcEnv(grpcIdentities.gateway);
});

const env = (port: number) => ({
  ...tls,
  NATS_URL: testNatsUrl(),
  NATS_SUBJECT_PREFIX: testSubjectPrefix('gwproc'),
  HTTP_HOST: '127.0.0.1',
  HTTP_PORT: String(port),
  PUBLIC_BASE_URL: `http://127.0.0.1:${port}`,
  APP_URL: 'http://127.0.0.1:3000/',
  // Peers are dialled lazily: nothing listens there, which readiness must report.
  IDENTITY_ADDR: '127.0.0.1:1',
  SUBSCRIPTION_ADDR: '127.0.0.1:1',
  MEETINGS_ADDR: '127.0.0.1:1',
  AUTH_JWT_SECRET: jwtSecret,
});

test('runs as a process: logs ready with its port, is live but not ready without subscription, exits 0 on SIGTERM', async () => {
  const port = await localInfra.freePort();
  const gateway = await spawnService({ entry, env: env(port) });
  try {
    expect(gateway.ready).toMatchObject({ service: 'gateway', httpPort: port });
    const live = await fetch(`http://127.0.0.1:${port}/healthz`);
    expect(live.status).toBe(200);
    // Idle keep-alive connections outlive a load balancer's (60 s) and fetch's (4 s) own idle
    // timeouts, so the peer closes them first and never reuses one the gateway just closed.
    expect(live.headers.get('keep-alive')).toBe('timeout=65');
    const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
    expect(ready.status).toBe(503);
    expect(await ready.json()).toMatchObject({ checks: { nats: 'up', subscription: 'not_serving' } });
  } finally {
    expect(await gateway.stop()).toBe(0);
  }
  expect(gateway.lines.some((line) => line.includes('"msg":"stopped"'))).toBe(true);
  expect(gateway.lines.join('\n')).not.toContain(jwtSecret);
});

test('refuses to start without its configuration, naming what is missing', async () => {
  const { AUTH_JWT_SECRET: _secret, ...incomplete } = env(0);
  const child = spawn(process.execPath, [entry], { env: { PATH: process.env.PATH ?? '', ...incomplete } });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  expect(code).toBe(1);
  expect(output).toContain('AUTH_JWT_SECRET');
});

test('refuses to start in production with a secret published in this repository, and says why', async () => {
  const child = spawn(process.execPath, [entry], {
    env: {
      PATH: process.env.PATH ?? '',
      ...env(0),
      NODE_ENV: 'production',
      AUTH_JWT_SECRET: 'calsync-dev-jwt-secret-change-me',
    },
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  expect(code).toBe(1);
  expect(output).toMatch(/AUTH_JWT_SECRET: .*published/);
  expect(output).not.toContain('calsync-dev-jwt-secret-change-me');
});
