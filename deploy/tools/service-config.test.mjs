// Each rendered container's environment satisfies its service's own configuration schema: the
// chart's variables are loaded with the service's built loader (dist/config.js), so a missing
// required variable, a malformed value or a rule across variables fails here, not in a pod.
// Secrets come from the rendered Secret; a Secret the operator manages is stood in for by
// well-formed values. Needs the services built (.ci/run builds before it runs the chart checks).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { environmentOf, renderedObjects, secretsOf } from './rendered.mjs';

const repoDir = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const requireFromRepo = createRequire(join(repoDir, 'package.json'));
const files = (process.env.CALSYNC_RENDERED ?? '').split('\n').filter(Boolean);

// What an operator's Secret holds, by key: shapes the services accept, never real values.
const operatorSecret = {
  DATABASE_URL: 'postgres://calsync:password@postgres.example.com:5432/calsync',
  url: 'postgres://identity:password@postgres.example.com:5432/calsync',
  // Made at run time too: production refuses a sealing key that is typed text or not random.
  SEALING_KEYS: `k1=${randomBytes(32).toString('base64')},k2=${randomBytes(32).toString('base64')}`,
  CALENDLY_CLIENT_SECRET: 'client-secret',
  CALENDLY_WEBHOOK_SIGNING_KEY: 'application-signing-key',
  // Made at run time: the gateway refuses in production any secret written in the repository.
  AUTH_JWT_SECRET: randomBytes(36).toString('base64'),
};

/** The service's config loaders: every exported load*Config, or the kit's loader over configSchema. */
function loadersOf(service) {
  const distConfig = join(repoDir, 'services', service, 'dist', 'config.js');
  if (!existsSync(distConfig)) return undefined;
  const module = requireFromRepo(distConfig);
  const loaders = Object.entries(module).filter(
    ([name, value]) => /^load\w*Config$/.test(name) && typeof value === 'function',
  );
  if (loaders.length > 0) return loaders;
  const { loadConfig } = requireFromRepo('@calsync/service-kit');
  return [['configSchema', (env) => loadConfig(module.configSchema, env)]];
}

for (const file of files) {
  const name = basename(file, '.yaml');
  const objects = renderedObjects(file);
  const chartSecrets = secretsOf(objects);
  // NODE_ENV is what deploy/Dockerfile sets; the chart overrides it only for dev clusters.
  const environment = (container) =>
    environmentOf(container, (secret) => chartSecrets.get(secret) ?? operatorSecret, { NODE_ENV: 'production' });

  describe(`${name} values`, () => {
    const workloads = objects.filter((object) => object.kind === 'Deployment' || object.kind === 'Job');
    for (const workload of workloads) {
      const service = workload.metadata.labels['app.kubernetes.io/component'];
      const skip =
        name === 'default'
          ? 'the default values leave publicBaseUrl and the secrets unset on purpose (NOTES lists them)'
          : loadersOf(service) === undefined && `services/${service} is not built (npm run build)`;
      test(`${workload.kind} ${workload.metadata.name}: ${service} accepts its environment`, { skip }, () => {
        const pod = workload.spec.template.spec;
        for (const container of [...(pod.initContainers ?? []), ...pod.containers]) {
          const env = environment(container);
          for (const [loader, load] of loadersOf(service)) {
            assert.doesNotThrow(() => load(env), `${container.name} (${loader})`);
          }
        }
      });
    }
  });
}
