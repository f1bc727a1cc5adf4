// The Node.js options a calsync service runs with: its `heap` in the chart's values
// (deploy/helm/calsync/values.yaml), the one place they are set. The chart renders them into
// the container's NODE_OPTIONS; `npm run dev`, the end-to-end tests and the benches start each
// service with the same NODE_OPTIONS from here, so what runs and is measured locally is what is
// deployed (deploy/README.md, "Memory").
'use strict';
const { readFileSync } = require('node:fs');
const { join } = require('node:path');

/**
 * NODE_OPTIONS for a service's `heap` block: `--max-old-space-size` and `--max-semi-space-size`
 * (both MiB) for the values that are set; '' when neither is. The chart's calsync.nodeOptions
 * renders the same text (deploy/tools/service-env.test.mjs holds them equal).
 */
function nodeOptionsOfHeap(heap) {
  const flags = [];
  if (heap?.maxOldSpaceMb) flags.push(`--max-old-space-size=${heap.maxOldSpaceMb}`);
  if (heap?.maxSemiSpaceMb) flags.push(`--max-semi-space-size=${heap.maxSemiSpaceMb}`);
  return flags.join(' ');
}

const valuesByRoot = new Map();

/** The chart's default values (deploy/helm/calsync/values.yaml), read once per checkout. */
function chartValues(rootDir) {
  if (!valuesByRoot.has(rootDir)) {
    const { parse } = require('yaml');
    valuesByRoot.set(rootDir, parse(readFileSync(join(rootDir, 'deploy/helm/calsync/values.yaml'), 'utf8')));
  }
  return valuesByRoot.get(rootDir);
}

/** `{NODE_OPTIONS}` for `service` as the chart's default values set it, or `{}` when they set none. */
function nodeOptionsEnv(rootDir, service) {
  const values = chartValues(rootDir)[service];
  if (!values) throw new Error(`the chart's values have no service ${service}`);
  const options = nodeOptionsOfHeap(values.heap);
  return options ? { NODE_OPTIONS: options } : {};
}

module.exports = { chartValues, nodeOptionsEnv, nodeOptionsOfHeap };
