import { randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { createTestDatabase, testNatsUrl, testSubjectPrefix } from '@calsync/service-kit/testing';
import { rootDir } from './system-harness';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { startSystem } = require('../lib/system.cjs') as typeof import('../lib/system.cjs');

/** Processes on this machine whose environment holds `name=value` (Linux /proc). */
function processesWith(name: string, value: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/environ`, 'latin1').split('\0').includes(`${name}=${value}`)) {
        pids.push(Number(entry));
      }
    } catch {
      // the process is gone, or not ours to read
    }
  }
  return pids;
}

it('leaves no service running when one beside it fails to start', async () => {
  const marker = randomUUID();
  const database = await createTestDatabase('system_start');
  try {
    await expect(
      startSystem({
        rootDir,
        databaseUrl: database.url,
        natsUrl: testNatsUrl(),
        natsSubjectPrefix: testSubjectPrefix('system_start'),
        extraEnv: { meetings: { CALSYNC_START_MARKER: marker }, subscription: { GRPC_PORT: 'not-a-port' } },
      }),
    ).rejects.toThrow(/subscription/);
    // Checked before the database goes, so a service left running cannot have stopped on its own.
    expect(processesWith('CALSYNC_START_MARKER', marker)).toEqual([]);
  } finally {
    await database.drop();
  }
}, 90_000);
