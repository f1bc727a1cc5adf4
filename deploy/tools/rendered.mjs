// What `helm template` rendered, read the way the kubelet reads it: the chart's Secrets by name
// and each container's environment with its secretKeyRefs resolved. Shared by the configuration
// test (service-config.test.mjs) and the container smoke test (container-smoke.mjs).
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';

/** Every object of a rendered manifest file. */
export function renderedObjects(file) {
  return parseAllDocuments(readFileSync(file, 'utf8'))
    .map((document) => document.toJS())
    .filter(Boolean);
}

/** The rendered Secrets: name -> key -> decoded value. */
export function secretsOf(objects) {
  return new Map(
    objects
      .filter((object) => object.kind === 'Secret')
      .map((secret) => [
        secret.metadata.name,
        {
          ...Object.fromEntries(
            Object.entries(secret.data ?? {}).map(([key, value]) => [key, Buffer.from(value, 'base64').toString()]),
          ),
          ...secret.stringData,
        },
      ]),
  );
}

/**
 * The environment a container starts with: `imageEnv` (what the image sets), then the
 * container's. `secretData(name)` gives a Secret's keys; a required key it lacks throws what the
 * kubelet would refuse with, an optional one is left out.
 */
export function environmentOf(container, secretData, imageEnv = {}) {
  const env = { ...imageEnv };
  for (const variable of container.env ?? []) {
    if (!variable.valueFrom) {
      env[variable.name] = variable.value;
      continue;
    }
    const { name: secretName, key, optional } = variable.valueFrom.secretKeyRef;
    const value = secretData(secretName)?.[key];
    if (value !== undefined) env[variable.name] = value;
    else if (!optional)
      throw new Error(`${container.name}: Secret ${secretName} has no ${key}; the pod would not start`);
  }
  return env;
}
