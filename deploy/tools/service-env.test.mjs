// The chart sets only variables the services read: every env name of a rendered container is a
// key of its service's src/config.ts schema, or of a service-kit fragment that schema spreads
// (...commonEnv, ...postgresEnv(...)). A renamed or misspelt variable fails here, not in a pod.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';

const repoDir = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const files = (process.env.CALSYNC_RENDERED ?? '').split('\n').filter(Boolean);

const keysOf = (source) => new Set([...source.matchAll(/^\s+([A-Z][A-Z0-9_]+):/gm)].map((match) => match[1]));

/** service-kit's exported env fragments: name -> the variables it declares. */
function kitFragments() {
  const source = readFileSync(join(repoDir, 'services/service-kit/src/config.ts'), 'utf8');
  const fragments = new Map();
  for (const match of source.matchAll(/^export const (\w+) = [\s\S]*?^\}\)?;$/gm)) {
    fragments.set(match[1], keysOf(match[0]));
  }
  return fragments;
}

const fragments = kitFragments();
const declared = new Map();

/** Every variable a service's config schema can read. */
function variablesOf(service) {
  if (!declared.has(service)) {
    const source = readFileSync(join(repoDir, 'services', service, 'src/config.ts'), 'utf8');
    const variables = keysOf(source);
    for (const [, spread] of source.matchAll(/\.\.\.(\w+)/g)) {
      for (const variable of fragments.get(spread) ?? []) variables.add(variable);
    }
    declared.set(service, variables);
  }
  return declared.get(service);
}

test('service-kit fragments were found', () => {
  for (const fragment of ['commonEnv', 'postgresEnv', 'natsEnv', 'grpcServerEnv', 'sealingEnv']) {
    assert.ok(fragments.get(fragment)?.size > 0, fragment);
  }
});

for (const file of files) {
  const workloads = parseAllDocuments(readFileSync(file, 'utf8'))
    .map((document) => document.toJS())
    .filter((object) => object?.kind === 'Deployment' || object?.kind === 'Job');
  describe(`${basename(file, '.yaml')} values`, () => {
    for (const workload of workloads) {
      const service = workload.metadata.labels['app.kubernetes.io/component'];
      test(`${workload.kind} ${workload.metadata.name} sets only variables ${service} reads`, () => {
        const pod = workload.spec.template.spec;
        for (const container of [...(pod.initContainers ?? []), ...pod.containers]) {
          const unknown = (container.env ?? [])
            .map((variable) => variable.name)
            .filter((name) => !variablesOf(service).has(name));
          assert.deepEqual(unknown, [], `${container.name} sets variables services/${service}/src/config.ts lacks`);
        }
      });
    }
  });
}
