import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { watchHealth } from './grpc-server';
import { createStop } from './lifecycle';
import { captureLogger } from './testing/log-capture';
import { waitFor } from './testing/polling';

const run = promisify(execFile);
const kit = join(__dirname, '..', 'dist', 'index.js');

/** Runs a service entry point built on runService, with the environment given. */
async function runEntry(env: Record<string, string>) {
  const script = `
    const { z } = require('zod');
    const kit = require(${JSON.stringify(kit)});
    const schema = z.object({ ...kit.commonEnv, DATABASE_URL: kit.env.url() });
    kit.runService({
      service: 'entry-test',
      loadConfig: () => kit.loadConfig(schema),
      migrate: async (config, log) => log.info('migrating'),
      start: async (config, { log }) => {
        const server = setInterval(() => undefined, 1000); // a service's servers keep it alive
        log.info('ready');
        // SIGTERM once ready: runs after runService has taken the app and installed its signal handlers.
        setImmediate(() => process.kill(process.pid, 'SIGTERM'));
        return { stop: async () => { clearInterval(server); log.info('stopped'); } };
      },
    });`;
  return run(process.execPath, ['-e', script], {
    env: { PATH: process.env.PATH ?? '', ...env },
    cwd: join(__dirname, '..'),
  }).then(
    (result) => ({ code: 0, out: result.stdout }),
    (error: { code: number; stdout: string }) => ({ code: error.code, out: error.stdout }),
  );
}

describe('runService', () => {
  it('exits 1 naming the bad variable when the configuration is invalid', async () => {
    const { code, out } = await runEntry({ DATABASE_URL: 'nope' });
    expect(code).toBe(1);
    expect(out).toContain('configuration invalid');
    expect(out).toContain('DATABASE_URL: must be a URL');
  });

  it('applies migrations and exits 0 without starting when MIGRATE_ONLY is set', async () => {
    const { code, out } = await runEntry({ DATABASE_URL: 'postgres://db/x', MIGRATE_ONLY: 'true' });
    expect(code).toBe(0);
    expect(out).toContain('"msg":"migrating"');
    expect(out).toContain('"msg":"migrations applied"');
    expect(out).not.toContain('"msg":"ready"');
  });

  it('starts, then stops on SIGTERM and exits 0', async () => {
    const { code, out } = await runEntry({ DATABASE_URL: 'postgres://db/x' });
    expect(code).toBe(0);
    expect(out.indexOf('"msg":"ready"')).toBeGreaterThan(-1);
    expect(out.indexOf('"msg":"stopped"')).toBeGreaterThan(out.indexOf('"msg":"ready"'));
  });
});

describe('watchHealth', () => {
  it('follows the dependency check, counts a throwing check as unhealthy, and logs each change', async () => {
    const { log, lines } = captureLogger();
    const seen: boolean[] = [];
    let answer: () => Promise<boolean> = async () => true;
    const health = await watchHealth({
      server: { setServing: (serving) => seen.push(serving) },
      check: () => answer(),
      log,
      intervalMs: 20,
    });
    answer = async () => {
      throw new Error('postgres is down');
    };
    await waitFor(() => seen.length === 2, { what: 'health to go down' });
    answer = async () => true;
    await waitFor(() => seen.length === 3, { what: 'health to come back' });
    health.stop();
    expect(seen).toEqual([true, false, true]);
    expect(lines.filter((line) => line.includes('dependency health changed'))).toHaveLength(2);
  });
});

describe('createStop', () => {
  it('runs the steps once, in order, even when one fails or it is called twice', async () => {
    const { log } = captureLogger();
    const order: string[] = [];
    const stop = createStop({
      log,
      timeoutMs: 1_000,
      steps: [
        { name: 'a', run: () => void order.push('a') },
        {
          name: 'b',
          run: () => {
            order.push('b');
            throw new Error('b failed');
          },
        },
        { name: 'c', run: async () => void order.push('c') },
      ],
    });
    await Promise.all([stop(), stop()]);
    expect(order).toEqual(['a', 'b', 'c']);
  });
});
