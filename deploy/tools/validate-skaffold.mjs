// Validates skaffold.yaml offline: against skaffold's published JSON schema for its apiVersion
// (vendored in skaffold-schema/, with its licence), and every artifact it names, in the base
// config and in each profile, against what deploy/images.sh builds: the image calsync-<service>
// from deploy/Dockerfile with SERVICE=<service>, for a service that has a main.
// Usage: node validate-skaffold.mjs [path/to/skaffold.yaml]; exits 1 listing every problem.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Ajv from 'ajv';
import { parseAllDocuments } from 'yaml';

const here = dirname(fileURLToPath(import.meta.url));
const repoDir = join(here, '..', '..');
const file = process.argv[2] ?? join(repoDir, 'skaffold.yaml');
const problems = [];

const configs = parseAllDocuments(readFileSync(file, 'utf8'))
  .map((document) => document.toJS())
  .filter(Boolean);

/** Every artifact a config can build: its own, each profile's, and each profile's added by a patch. */
function artifactsOf(config) {
  const found = (config.build?.artifacts ?? []).map((artifact) => ({ where: 'build', artifact }));
  for (const profile of config.profiles ?? []) {
    for (const artifact of profile.build?.artifacts ?? []) found.push({ where: `profile ${profile.name}`, artifact });
    for (const patch of profile.patches ?? []) {
      if (patch.op === 'add' && /^\/build\/artifacts\//.test(patch.path)) {
        found.push({ where: `profile ${profile.name} (patch)`, artifact: patch.value });
      }
    }
  }
  return found;
}

for (const config of configs) {
  const name = config.metadata?.name ?? '(unnamed)';
  const version = String(config.apiVersion ?? '').replace(/^skaffold\//, '');
  const schemaFile = join(here, 'skaffold-schema', `${version}.json`);
  if (!existsSync(schemaFile)) {
    problems.push(`${name}: no vendored schema for apiVersion ${config.apiVersion} (deploy/tools/skaffold-schema)`);
    continue;
  }
  // skaffold's schemas carry editor hints (x-intellij-html-description, preferredOrder) that
  // are not JSON-schema keywords; strict mode would refuse the schema itself for them.
  const validate = new Ajv({ strict: false, allErrors: true }).compile(JSON.parse(readFileSync(schemaFile, 'utf8')));
  if (!validate(config)) {
    for (const error of validate.errors) {
      problems.push(`${name}: ${error.instancePath || '/'} ${error.message} ${JSON.stringify(error.params)}`);
    }
  }
  for (const { where, artifact } of artifactsOf(config)) {
    const service = artifact.docker?.buildArgs?.SERVICE;
    const label = `${name}, ${where}: artifact ${artifact.image}`;
    if (artifact.docker?.dockerfile !== 'deploy/Dockerfile' || (artifact.context ?? '.') !== '.') {
      problems.push(`${label}: not deploy/Dockerfile from the repository root, so deploy/images.sh does not build it`);
    } else if (!service || !existsSync(join(repoDir, 'services', service, 'src', 'main.ts'))) {
      problems.push(`${label}: SERVICE=${service} is not a service with a main`);
    } else if (artifact.image !== `calsync-${service}`) {
      problems.push(`${label}: deploy/images.sh builds SERVICE=${service} as calsync-${service}`);
    }
  }
}

if (problems.length > 0) {
  console.error(`${file}:\n  ${problems.join('\n  ')}`);
  process.exit(1);
}
console.log(`${file}: valid against skaffold's schema; every artifact is one deploy/images.sh builds`);
