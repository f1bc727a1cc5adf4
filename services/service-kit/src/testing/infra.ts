import { randomBytes } from 'node:crypto';
import { Client } from 'pg';

function required(name: 'CALSYNC_TEST_DATABASE_URL' | 'CALSYNC_TEST_NATS_URL'): string {
  const value = process.env[name];
  if (!value)
    throw new Error(`${name} is not set: run tests through jest (scripts/test-infra/global-setup.mjs sets it)`);
  return value;
}

/** A database of its own for one test file; `drop()` removes it. */
export interface TestDatabase {
  url: string;
  name: string;
  drop(): Promise<void>;
}

/** Creates a fresh database on the test Postgres server, so test files run in parallel. */
export async function createTestDatabase(label = 'test'): Promise<TestDatabase> {
  const serverUrl = required('CALSYNC_TEST_DATABASE_URL');
  const name = `calsync_${label
    .replace(/[^a-z0-9]/gi, '_')
    .toLowerCase()
    .slice(0, 30)}_${randomBytes(4).toString('hex')}`;
  const admin = new Client({ connectionString: serverUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    name,
    drop: async () => {
      const client = new Client({ connectionString: serverUrl });
      await client.connect();
      try {
        // Pools that were just ended may still be closing their connections; FORCE would end those
        // with 57P01, which a pool without an error listener throws in the test process (a suite
        // failed on exactly that). Wait for them to go first, so FORCE only ends true leftovers.
        const deadline = Date.now() + 5_000;
        for (;;) {
          const { rows } = await client.query<{ n: number }>(
            'SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1',
            [name],
          );
          if (rows[0]!.n === 0 || Date.now() > deadline) break;
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
        await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await client.end();
      }
    },
  };
}

/** The NATS server of the test run. */
export function testNatsUrl(): string {
  return required('CALSYNC_TEST_NATS_URL');
}

/** A subject prefix of its own for one test file (streams are named after it). */
export function testSubjectPrefix(label = 't'): string {
  return `${
    label
      .replace(/[^a-z0-9]/gi, '')
      .toLowerCase()
      .slice(0, 12) || 't'
  }${randomBytes(4).toString('hex')}`;
}
