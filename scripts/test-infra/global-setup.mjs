// Gives the test run a Postgres server and a NATS server with JetStream: from
// CALSYNC_TEST_DATABASE_URL / CALSYNC_TEST_NATS_URL when set, else from testcontainers where
// a Docker runtime answers, else an embedded Postgres and a local nats-server. Each test file
// then makes its own database and its own stream names (service-kit/testing).
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import localInfra from '../lib/local-infra.cjs';

const { dockerAvailable, startContainers, startEmbeddedPostgres, startLocalNats } = localInfra;

export default async function globalSetup() {
  const stops = [];
  const needPostgres = !process.env.CALSYNC_TEST_DATABASE_URL;
  const needNats = !process.env.CALSYNC_TEST_NATS_URL;
  if ((needPostgres || needNats) && (await dockerAvailable())) {
    try {
      const containers = await startContainers();
      stops.push(containers.stop);
      process.env.CALSYNC_TEST_DATABASE_URL ??= containers.postgresUrl;
      process.env.CALSYNC_TEST_NATS_URL ??= containers.natsUrl;
    } catch (error) {
      // A daemon that answers but has no registry (offline, a proxy, a locked-down CI) is common.
      const reason = String(error?.message ?? error).split('\n')[0];
      process.stderr.write(
        `\nDocker answers but could not start the test containers (${reason}); using a local Postgres and nats-server instead.\n`,
      );
    }
  }
  const dir = join(tmpdir(), `calsync-test-${process.pid}`);
  if (!process.env.CALSYNC_TEST_DATABASE_URL) {
    const postgres = await startEmbeddedPostgres({ dir: join(dir, 'postgres') });
    stops.push(postgres.stop);
    process.env.CALSYNC_TEST_DATABASE_URL = postgres.url;
  }
  if (!process.env.CALSYNC_TEST_NATS_URL) {
    const nats = await startLocalNats({ dir: join(dir, 'nats') });
    stops.push(nats.stop);
    process.env.CALSYNC_TEST_NATS_URL = nats.url;
  }
  stops.unshift(() => rmSync(dir, { recursive: true, force: true }));
  globalThis.__calsyncInfraStops = stops;
}
