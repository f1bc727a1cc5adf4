// The dashboard and the alerts ask only for metrics the services export, and every alert has a
// runbook: each metric a PromQL expression names (the Grafana dashboard's targets, the rendered
// PrometheusRule's rules) must be registered by some service (a prom-client metric in
// services/*/src, or one of prom-client's default process metrics), and each alert's runbook_url
// must point at a section of deploy/README.md.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { renderedObjects } from './rendered.mjs';

const deployDir = join(dirname(fileURLToPath(import.meta.url)), '..');
const servicesDir = join(deployDir, '../services');
const dashboard = JSON.parse(readFileSync(join(deployDir, 'helm/calsync/dashboards/calsync.json'), 'utf8'));
const rules = (process.env.CALSYNC_RENDERED ?? '')
  .split('\n')
  .filter(Boolean)
  .flatMap((file) => renderedObjects(file))
  .filter((object) => object.kind === 'PrometheusRule')
  .flatMap((object) => object.spec.groups.flatMap((group) => group.rules));

function sourceFiles(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return name === 'node_modules' || name === 'dist' ? [] : sourceFiles(path);
    return path.endsWith('.ts') && !path.endsWith('.test.ts') ? [path] : [];
  });
}

/** Metric names the services register: `name: '<metric>'` or counter('<metric>', ...) in their sources. */
function exportedMetrics() {
  const names = new Set();
  for (const service of readdirSync(servicesDir)) {
    const src = join(servicesDir, service, 'src');
    if (!statSync(join(servicesDir, service)).isDirectory()) continue;
    for (const file of sourceFiles(src)) {
      for (const match of readFileSync(file, 'utf8').matchAll(
        /(?:name:\s*|\b(?:counter|gauge|histogram)\(\s*)'([a-z_:][a-z0-9_:]*)'/g,
      )) {
        names.add(match[1]);
      }
    }
  }
  // What collectDefaultMetrics registers in every service (the kit's createMetricsRegistry).
  const require = createRequire(join(servicesDir, 'service-kit/package.json'));
  const { Registry, collectDefaultMetrics } = require('prom-client');
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  for (const metric of registry.getMetricsAsArray()) names.add(metric.name);
  return names;
}

const keywords = new Set([
  'and',
  'or',
  'unless',
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'offset',
  'bool',
]);

/** The metric names a PromQL expression selects. */
export function metricsOf(expr) {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\boffset\s+-?[0-9a-z]+/g, ' ')
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  return [...bare.matchAll(/[A-Za-z_:][A-Za-z0-9_:]*(?!\s*\(|[A-Za-z0-9_:])/g)]
    .map((match) => match[0])
    .filter((name) => !keywords.has(name) && !/^\d/.test(name));
}

const base = (name) => name.replace(/_(bucket|sum|count)$/, '');

test('metricsOf finds the selected metrics, not functions, labels or keywords', () => {
  assert.deepEqual(
    metricsOf('sum by (le) (rate(a_seconds_bucket{route=~"/x|y"}[5m])) / on (pod) b_total > 0 and max(c) >= 3'),
    ['a_seconds_bucket', 'b_total', 'c'],
  );
  assert.deepEqual(metricsOf('max(d{state="x"}) - max(d{state="x"} offset 1h) > 20'), ['d', 'd']);
});

test('every dashboard query and alert asks for metrics the services export', () => {
  const exported = exportedMetrics();
  assert.ok(exported.has('http_requests_total') && exported.has('process_resident_memory_bytes'));
  const queries = [
    ...dashboard.panels.flatMap((panel) => panel.targets.map((target) => [`panel "${panel.title}"`, target.expr])),
    ...rules.map((rule) => [`alert ${rule.alert ?? rule.record}`, rule.expr]),
  ];
  assert.ok(rules.length > 0, 'no rendered PrometheusRule (CALSYNC_RENDERED with ci/job-migrations-values.yaml)');
  const unknown = queries.flatMap(([where, expr]) =>
    metricsOf(expr)
      .filter((name) => !exported.has(name) && !exported.has(base(name)))
      .map((name) => `${where}: ${name}`),
  );
  assert.deepEqual(unknown, []);
});

test('every alert has a runbook section in deploy/README.md, and its runbook_url points at it', () => {
  const readme = readFileSync(join(deployDir, 'README.md'), 'utf8');
  const alerts = rules.filter((rule) => rule.alert);
  assert.ok(alerts.length >= 6);
  const missing = alerts
    .filter((rule) => {
      const anchor = rule.alert.toLowerCase();
      return !readme.includes(`\n### ${rule.alert}\n`) || !rule.annotations.runbook_url?.endsWith(`#${anchor}`);
    })
    .map((rule) => rule.alert);
  assert.deepEqual(missing, []);
});
