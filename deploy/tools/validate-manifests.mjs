// Validates every object in rendered manifest files, offline, two ways:
// 1. against the Kubernetes JSON schemas that kubernetes-models compiles from the Kubernetes
//    OpenAPI spec (types, required fields, enums, formats), and
// 2. for unknown fields (a mis-indented key is silently dropped by some clients): each object is
//    type-checked as an object literal against the same package's generated TypeScript types,
//    whose excess-property check refuses any field the API does not define.
// Usage: node validate-manifests.mjs rendered.yaml [...]; exits 1 listing every problem.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseAllDocuments } from 'yaml';
import ts from 'typescript';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const modelsDir = dirname(require.resolve('kubernetes-models/package.json'));
const prometheusDir = dirname(require.resolve('@kubernetes-models/prometheus-operator/package.json'));
const certManagerDir = dirname(require.resolve('@kubernetes-models/cert-manager/package.json'));

/** The module (without extension) that defines the model of an apiVersion/kind. */
function modelPath(apiVersion, kind) {
  if (apiVersion.startsWith('monitoring.coreos.com/')) return join(prometheusDir, apiVersion, kind);
  if (apiVersion.startsWith('cert-manager.io/')) return join(certManagerDir, apiVersion, kind);
  return join(modelsDir, apiVersion, kind);
}

/** Every object of every file, with where it came from. */
function readObjects(files) {
  const objects = [];
  for (const file of files) {
    for (const document of parseAllDocuments(readFileSync(file, 'utf8'))) {
      if (document.errors.length > 0) throw new Error(`${file}: ${document.errors[0].message}`);
      const value = document.toJS();
      if (value === null) continue;
      const where = `${basename(file)}: ${value.kind ?? '?'}/${value.metadata?.name ?? '?'}`;
      objects.push({ file, where, value });
    }
  }
  return objects;
}

async function validateSchemas(objects) {
  const problems = [];
  const seen = new Set();
  for (const { file, where, value } of objects) {
    const identity = `${file}|${value.apiVersion}|${value.kind}|${value.metadata?.namespace ?? ''}|${value.metadata?.name}`;
    if (seen.has(identity)) problems.push(`${where}: rendered twice`);
    seen.add(identity);
    if (typeof value.apiVersion !== 'string' || typeof value.kind !== 'string') {
      problems.push(`${where}: no apiVersion or kind`);
      continue;
    }
    let model;
    try {
      model = (await import(pathToFileURL(`${modelPath(value.apiVersion, value.kind)}.js`).href))[value.kind];
    } catch {
      model = undefined;
    }
    if (!model) {
      problems.push(`${where}: no schema for ${value.apiVersion} ${value.kind}`);
      continue;
    }
    try {
      new model(value).validate();
    } catch (error) {
      problems.push(`${where}: ${error.message}`);
    }
  }
  return problems;
}

function checkUnknownFields(objects) {
  const workDir = mkdtempSync(join(tmpdir(), 'calsync-manifests-'));
  try {
    const lines = [];
    const owners = [];
    const imports = new Map();
    for (const { value } of objects) {
      const key = `${value.apiVersion}/${value.kind}`;
      if (!imports.has(key)) imports.set(key, { alias: `T${imports.size}`, value });
    }
    for (const [key, { alias, value }] of imports) {
      lines.push(
        `import type { I${value.kind} as ${alias} } from '${modelPath(value.apiVersion, value.kind)}.js'; // ${key}`,
      );
      owners.push(undefined);
    }
    objects.forEach(({ where, value }, index) => {
      const { alias } = imports.get(`${value.apiVersion}/${value.kind}`);
      const literal = JSON.stringify(value, null, 2).split('\n');
      literal[0] = `export const object${index}: ${alias} = ${literal[0]}`;
      literal[literal.length - 1] += ';';
      for (const line of literal) {
        lines.push(line);
        owners.push(where);
      }
    });
    const file = join(workDir, 'manifests.mts');
    writeFileSync(file, `${lines.join('\n')}\n`);
    const program = ts.createProgram([file], {
      strict: true,
      noEmit: true,
      skipLibCheck: true,
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      target: ts.ScriptTarget.ES2022,
      types: [],
    });
    return ts.getPreEmitDiagnostics(program).map((diagnostic) => {
      const message = ts.flattenDiagnosticMessageText(diagnostic.messageText, ' ');
      if (diagnostic.file?.fileName !== file || diagnostic.start === undefined) return message;
      const { line } = diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start);
      return `${owners[line] ?? 'imports'}: ${message} (at ${lines[line].trim()})`;
    });
  } finally {
    rmSync(workDir, { recursive: true, force: true });
  }
}

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error(`usage: node ${basename(here)}/validate-manifests.mjs rendered.yaml [...]`);
  process.exit(2);
}
const objects = readObjects(files);
const problems = [...(await validateSchemas(objects)), ...checkUnknownFields(objects)];
const kinds = [...new Set(objects.map(({ value }) => value.kind))].sort();
if (problems.length > 0) {
  for (const problem of problems) console.error(`  ${problem}`);
  console.error(`${problems.length} problem(s) in ${objects.length} objects`);
  process.exit(1);
}
console.log(`${objects.length} objects in ${files.length} files valid (${kinds.join(', ')})`);
