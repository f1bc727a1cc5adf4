// A service whose parent died (a crashed bench or dev script) still stops promptly on SIGTERM,
// although its stdout pipe is broken. The simulator, run as `node dist/main.js` under a parent
// that pipes its output, used to hang for good in pino's exit flush.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { rootDir } from './system-harness';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { freePort } = require('../lib/local-infra.cjs') as { freePort(): Promise<number> };

/** The parent: pipes the service's stdout, prints its pid once it is ready, then only reads. */
const parentScript = `
const { spawn } = require('node:child_process');
const [entry, env] = [process.argv[1], JSON.parse(process.argv[2])];
const service = spawn(process.execPath, [entry], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
let announced = false;
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

it('the simulator exits on SIGTERM after its parent was killed', async () => {
  const env = { SIM_HOST: '127.0.0.1', SIM_PORT: String(await freePort()), LOG_LEVEL: 'info' };
  const entry = join(rootDir, 'services', 'calendly-sim', 'dist', 'main.js');
  // The service inherits the parent's stderr, our pipe: it closes only when the service, the
  // last process holding it, has exited. That is the orphan's exit event.
  const parent: ChildProcess = spawn(process.execPath, ['-e', parentScript, entry, JSON.stringify(env)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stderrClosed = once(parent.stderr!, 'close');
  parent.stderr!.resume();
  const [pidLine] = (await once(parent.stdout!, 'data')) as [Buffer];
  orphanPid = Number(pidLine.toString().trim());
  expect(orphanPid).toBeGreaterThan(0);

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
}, 40_000);
