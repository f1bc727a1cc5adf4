// The chart sets only variables the services read: every env name of a rendered container is a
// key of its service's src/config.ts schema, or of a service-kit fragment that schema spreads
// (...commonEnv, ...postgresEnv(...)). A renamed or misspelt variable fails here, not in a pod.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse, parseAllDocuments } from 'yaml';

const repoDir = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const { nodeOptionsOfHeap } = createRequire(import.meta.url)(join(repoDir, 'scripts/lib/node-options.cjs'));
const chartValues = parse(readFileSync(join(repoDir, 'deploy/helm/calsync/values.yaml'), 'utf8'));
// Read by node itself, before any service code: the heap limits of <service>.heap.
const nodeVariables = new Set(['NODE_OPTIONS']);
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
            .filter((name) => !variablesOf(service).has(name) && !nodeVariables.has(name));
          assert.deepEqual(unknown, [], `${container.name} sets variables services/${service}/src/config.ts lacks`);
        }
      });
    }
  });
}

// npm run dev and the benches start each service with NODE_OPTIONS from scripts/lib/node-options.cjs:
// with the chart's default values the chart renders exactly the same.
for (const file of files.filter((name) => basename(name) === 'default.yaml')) {
  test('the default values render each service the NODE_OPTIONS npm run dev and the benches use', () => {
    const deployments = parseAllDocuments(readFileSync(file, 'utf8'))
      .map((document) => document.toJS())
      .filter((object) => object?.kind === 'Deployment');
    assert.ok(deployments.length > 0);
    for (const deployment of deployments) {
      const service = deployment.metadata.labels['app.kubernetes.io/component'];
      const [container] = deployment.spec.template.spec.containers;
      const rendered = (container.env ?? []).find((variable) => variable.name === 'NODE_OPTIONS')?.value;
      const expected = nodeOptionsOfHeap(chartValues[service].heap);
      assert.equal(rendered, expected || undefined, service);
    }
  });
}
