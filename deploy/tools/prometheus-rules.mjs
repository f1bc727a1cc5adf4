// Writes the rule groups of every PrometheusRule in rendered manifests as one Prometheus rule
// file, for promtool (check rules, test rules).
// Usage: node prometheus-rules.mjs out.yaml rendered.yaml [...]; exits 1 when there is none.
import { writeFileSync } from 'node:fs';
import { stringify } from 'yaml';
import { renderedObjects } from './rendered.mjs';

const [out, ...files] = process.argv.slice(2);
const groups = files
  .flatMap((file) => renderedObjects(file))
  .filter((object) => object.kind === 'PrometheusRule')
  .flatMap((object) => object.spec.groups);
if (groups.length === 0) {
  console.error(`no PrometheusRule in ${files.join(', ')}`);
  process.exit(1);
}
writeFileSync(out, stringify({ groups }));
console.log(`${groups.length} rule groups, ${groups.flatMap((group) => group.rules).length} rules -> ${out}`);
