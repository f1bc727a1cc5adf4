// A service whose parent died (a crashed bench or dev script) still stops promptly on SIGTERM,
// although its stdout pipe is broken. The simulator, run as `node dist/main.js` under a parent
// that pipes its output, used to hang for good in pino's exit flush; every kit service logs alike.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { createTestDatabase, testGrpcEnv, testNatsUrl, type TestDatabase } from '@calsync/service-kit/testing';
import { grpcIdentities } from '@calsync/service-kit';
import { rootDir } from './system-harness';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { freePort } = require('../lib/local-infra.cjs') as { freePort(): Promise<number> };
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { devSecrets } = require('../lib/system.cjs') as typeof import('../lib/system.cjs');

/** The parent: pipes the service's stdout, prints its pid once it is ready, then only reads. */
const parentScript = `
const { spawn } = require('node:child_process');
const [entry, env] = [process.argv[1], JSON.parse(process.argv[2])];
const service = spawn(process.execPath, [entry], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
let announced = false;
service.on('exit', (code) => {
  if (!announced) process.stdout.write('exited before ready: ' + code + '\\n');
});
service.stdout.on('data', (chunk) => {
  if (!announced && chunk.toString().includes('"msg":"ready"')) {
    announced = true;
    process.stdout.write(String(service.pid) + '\\n');
  }
});
`;

let orphanPid: number | undefined;

afterEach(() => {
  if (orphanPid === undefined) return;
  try {
    process.kill(orphanPid, 'SIGKILL');
  } catch {
    // already gone, as it should be
  }
  orphanPid = undefined;
});

let database: TestDatabase | undefined;

afterAll(async () => {
  await database?.drop();
});

/** The environment each service needs to start and say ready; the simulator needs no infrastructure. */
const environments: Record<string, () => Promise<Record<string, string>>> = {
  'calendly-sim': async () => ({ SIM_HOST: '127.0.0.1', SIM_PORT: String(await freePort()) }),
  identity: async () => {
    database = await createTestDatabase('orphan-identity');
    const secrets = devSecrets();
    return {
      DATABASE_URL: database.url,
      NATS_URL: testNatsUrl(),
      SEALING_KEYS: secrets.sealingKeys,
      SEALING_ACTIVE_KEY_ID: secrets.sealingKeys.split('=')[0],
      ...(await testGrpcEnv(grpcIdentities.identity)),
      GRPC_HOST: '127.0.0.1',
      GRPC_PORT: String(await freePort()),
      METRICS_PORT: String(await freePort()),
      CALENDLY_API_URL: 'http://127.0.0.1:1',
      CALENDLY_AUTH_URL: 'http://127.0.0.1:1',
      CALENDLY_CLIENT_ID: secrets.clientId,
      CALENDLY_CLIENT_SECRET: secrets.clientSecret,
    };
  },
};

it.each(Object.keys(environments))(
  '%s exits on SIGTERM after its parent was killed',
  async (service) => {
    const env = { ...(await environments[service]()), LOG_LEVEL: 'info' };
    const entry = join(rootDir, 'services', service, 'dist', 'main.js');
    // The service inherits the parent's stderr, our pipe: it closes only when the service, the
    // last process holding it, has exited. That is the orphan's exit event.
    const parent: ChildProcess = spawn(process.execPath, ['-e', parentScript, entry, JSON.stringify(env)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const stderrClosed = once(parent.stderr!, 'close');
    parent.stderr!.resume();
    const [pidLine] = (await once(parent.stdout!, 'data')) as [Buffer];
    expect(pidLine.toString().trim()).toMatch(/^\d+$/);
    orphanPid = Number(pidLine.toString().trim());

    parent.kill('SIGKILL');
    await once(parent, 'exit');
    process.kill(orphanPid, 'SIGTERM');

    // Its stop gives up after 5 s and its exit flush after 3 s: past that it is hung.
    const exitBound = 15_000;
    let timer: NodeJS.Timeout | undefined;
    const hung = new Promise<'hung'>((resolve) => {
      timer = setTimeout(() => resolve('hung'), exitBound);
    });
    const outcome = await Promise.race([stderrClosed.then(() => 'exited' as const), hung]);
    clearTimeout(timer);
    expect(outcome).toBe('exited');
    orphanPid = undefined;
  },
  40_000,
);
