// deploy/README.md documents every value of the chart: each leaf of values.yaml (a service's
// block once, as <service>) must appear in it as `path`.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

const deployDir = join(dirname(fileURLToPath(import.meta.url)), '..');
const values = parse(readFileSync(join(deployDir, 'helm/calsync/values.yaml'), 'utf8'));
const readme = readFileSync(join(deployDir, 'README.md'), 'utf8');
const services = ['identity', 'subscription', 'meetings', 'gateway', 'calendly-sim'];
// Maps whose keys are the operator's own (variables, labels, Kubernetes objects): documented whole.
const freeForm = new Set([
  'env',
  'secretEnv',
  'podLabels',
  'podAnnotations',
  'serviceAccountAnnotations',
  'nodeSelector',
  'affinity',
  'annotations',
  'labels',
  'resources',
  'config',
]);

function leaves(node, path) {
  const isMap = node !== null && typeof node === 'object' && !Array.isArray(node);
  const last = path[path.length - 1];
  if (!isMap || Object.keys(node).length === 0 || freeForm.has(last)) return [path.join('.')];
  return Object.entries(node).flatMap(([key, child]) => leaves(child, [...path, key]));
}

const documented = new Set(
  Object.entries(values).flatMap(([key, node]) => leaves(node, [services.includes(key) ? '<service>' : key])),
);

test('every service block has the same shape', () => {
  const shape = (service) => leaves(values[service], ['<service>']).sort();
  for (const service of services) assert.deepEqual(shape(service), shape('identity'), service);
});

test('deploy/README.md documents every value', () => {
  const missing = [...documented].filter((path) => !readme.includes(`\`${path}\``));
  assert.deepEqual(missing, []);
});
