// What every rendering of the chart must hold: hardened, bounded, probed Deployments, and a
// network that only the gateway opens to the outside. check-chart.sh renders the chart with each
// values set and passes the files in CALSYNC_RENDERED (one path a line).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { describe, test } from 'node:test';
import { parseAllDocuments } from 'yaml';

const files = (process.env.CALSYNC_RENDERED ?? '').split('\n').filter(Boolean);
const services = ['identity', 'subscription', 'meetings', 'gateway'];
const grpcCallers = {
  identity: ['gateway', 'meetings', 'subscription'],
  subscription: ['gateway'],
  meetings: ['gateway', 'subscription'],
};
const secretVariables = [
  'DATABASE_URL',
  'SEALING_KEYS',
  'CALENDLY_CLIENT_SECRET',
  'CALENDLY_WEBHOOK_SIGNING_KEY',
  'AUTH_JWT_SECRET',
  'SIM_CLIENT_SECRET',
  'SIM_APPLICATION_SIGNING_KEY',
];

test('check-chart.sh passed the rendered manifests', () => {
  assert.ok(files.length >= 2, 'CALSYNC_RENDERED names no files: run deploy/check-chart.sh');
});

function load(file) {
  return parseAllDocuments(readFileSync(file, 'utf8'))
    .map((document) => document.toJS())
    .filter(Boolean);
}

const component = (object) => object.metadata.labels?.['app.kubernetes.io/component'];

/** Bytes or millicores, for comparing requests with limits. */
function quantity(value) {
  const match = /^(\d+(?:\.\d+)?)(m|Ki|Mi|Gi|Ti|k|M|G)?$/.exec(String(value));
  assert.ok(match, `"${value}" is not a quantity this test understands`);
  const units = { m: 1e-3, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, k: 1e3, M: 1e6, G: 1e9 };
  return Number(match[1]) * (units[match[2]] ?? 1);
}

function selects(selector, labels) {
  return Object.entries(selector.matchLabels ?? {}).every(([key, value]) => labels[key] === value);
}

for (const file of files) {
  const name = basename(file, '.yaml');
  const objects = load(file);
  const ofKind = (kind) => objects.filter((object) => object.kind === kind);
  const deployments = ofKind('Deployment');

  describe(`${name} values`, () => {
    test('renders the four services', () => {
      assert.deepEqual(
        deployments
          .map(component)
          .filter((service) => services.includes(service))
          .sort(),
        [...services].sort(),
      );
    });

    for (const deployment of deployments) {
      const pod = deployment.spec.template.spec;
      const containers = [...(pod.initContainers ?? []), ...pod.containers];
      const label = deployment.metadata.name;

      describe(label, () => {
        test('runs as a non-root user', () => {
          assert.equal(pod.securityContext?.runAsNonRoot, true);
          assert.ok(pod.securityContext.runAsUser > 0, 'runAsUser must be a non-zero uid');
          for (const container of containers) {
            assert.notEqual(container.securityContext?.runAsNonRoot, false, container.name);
            assert.notEqual(container.securityContext?.runAsUser, 0, container.name);
          }
        });

        test('forbids privilege escalation and drops every capability', () => {
          for (const container of containers) {
            assert.equal(container.securityContext?.allowPrivilegeEscalation, false, container.name);
            assert.notEqual(container.securityContext?.privileged, true, container.name);
            assert.deepEqual(container.securityContext?.capabilities?.drop, ['ALL'], container.name);
          }
          assert.equal(pod.automountServiceAccountToken, false);
        });

        test('has a read-only root filesystem with /tmp on an emptyDir', () => {
          const emptyDirs = new Set(
            (pod.volumes ?? []).filter((volume) => volume.emptyDir).map((volume) => volume.name),
          );
          for (const container of containers) {
            assert.equal(container.securityContext?.readOnlyRootFilesystem, true, container.name);
            const tmp = (container.volumeMounts ?? []).find((mount) => mount.mountPath === '/tmp');
            assert.ok(tmp && emptyDirs.has(tmp.name), `${container.name}: /tmp is not an emptyDir`);
          }
        });

        test('sets cpu and memory requests and limits, requests within limits', () => {
          for (const container of containers) {
            for (const resource of ['cpu', 'memory']) {
              const request = container.resources?.requests?.[resource];
              const limit = container.resources?.limits?.[resource];
              assert.ok(request !== undefined, `${container.name}: no ${resource} request`);
              assert.ok(limit !== undefined, `${container.name}: no ${resource} limit`);
              assert.ok(quantity(request) <= quantity(limit), `${container.name}: ${resource} request above limit`);
            }
          }
        });

        test('probes readiness, liveness and start-up on the serving port', () => {
          for (const container of pod.containers) {
            const ports = new Map((container.ports ?? []).map((port) => [port.name, port.containerPort]));
            for (const kind of ['readinessProbe', 'livenessProbe', 'startupProbe']) {
              const probe = container[kind];
              assert.ok(probe, `${container.name}: no ${kind}`);
              if (ports.has('grpc')) {
                // The kubelet cannot present a client certificate: gRPC services are probed on the metrics port.
                assert.equal(
                  probe.httpGet?.port,
                  'metrics',
                  `${container.name}: ${kind} does not probe the metrics port`,
                );
                // Liveness must not restart a pod that only waits for Postgres or NATS.
                assert.equal(
                  probe.httpGet.path,
                  kind === 'livenessProbe' ? '/healthz' : '/readyz',
                  `${container.name}`,
                );
              } else {
                assert.ok(probe.httpGet, `${container.name}: ${kind} is not an HTTP probe`);
                assert.ok(ports.has(probe.httpGet.port), `${container.name}: ${kind} probes an undeclared port`);
              }
            }
            // The simulator's one health route is /_sim/healthz; every other HTTP server has /readyz.
            const readinessPath = component(deployment) === 'calendly-sim' ? '/_sim/healthz' : '/readyz';
            if (ports.has('grpc')) continue;
            if (container.readinessProbe.httpGet) assert.equal(container.readinessProbe.httpGet.path, readinessPath);
          }
        });

        test('reads secrets only from Secrets, never from plain values', () => {
          for (const container of containers) {
            for (const variable of container.env ?? []) {
              if (secretVariables.includes(variable.name)) {
                assert.ok(variable.valueFrom?.secretKeyRef, `${container.name}: ${variable.name} is a plain value`);
              }
            }
          }
        });

        test('is covered by a PodDisruptionBudget and a NetworkPolicy (unless it is the simulator)', () => {
          const labels = deployment.spec.template.metadata.labels;
          if (component(deployment) === 'calendly-sim') return;
          assert.ok(
            ofKind('PodDisruptionBudget').some((pdb) => selects(pdb.spec.selector, labels)),
            'no PodDisruptionBudget',
          );
          assert.ok(
            ofKind('NetworkPolicy').some((policy) => selects(policy.spec.podSelector, labels)),
            'no NetworkPolicy',
          );
        });
      });
    }

    test('exposes only the gateway outside the cluster', () => {
      for (const service of ofKind('Service')) assert.equal(service.spec.type ?? 'ClusterIP', 'ClusterIP');
      for (const ingress of ofKind('Ingress')) {
        const backends = ingress.spec.rules.flatMap((rule) => rule.http.paths.map((path) => path.backend.service.name));
        assert.ok(backends.length > 0);
        for (const backend of backends) assert.match(backend, /-gateway$/);
        const paths = ingress.spec.rules.flatMap((rule) => rule.http.paths.map((path) => path.path)).sort();
        assert.deepEqual(paths, ['/api', '/webhooks/calendly']);
      }
    });

    // operator.enabled renders the operator pods' own NetworkPolicy; the services then admit them too.
    const operatorPolicy = ofKind('NetworkPolicy').find((candidate) => component(candidate) === 'operator');

    test('admits gRPC calls only from each service’s callers (and the operator’s pods with operator.enabled)', () => {
      for (const [callee, serviceCallers] of Object.entries(grpcCallers)) {
        const callers = operatorPolicy ? [...serviceCallers, 'operator'].sort() : serviceCallers;
        const policy = ofKind('NetworkPolicy').find((candidate) => component(candidate) === callee);
        assert.ok(policy, `${callee}: no NetworkPolicy`);
        const grpcRules = policy.spec.ingress.filter((rule) => rule.ports.some((port) => port.port === 'grpc'));
        assert.equal(grpcRules.length, 1, `${callee}: one gRPC ingress rule`);
        const admitted = grpcRules[0].from.map((peer) => {
          assert.equal(peer.namespaceSelector, undefined, `${callee}: admits whole namespaces`);
          return peer.podSelector.matchLabels['app.kubernetes.io/component'];
        });
        assert.deepEqual(admitted.sort(), callers);
        for (const rule of policy.spec.ingress) {
          assert.ok(rule.from?.length > 0, `${callee}: an ingress rule admits everyone`);
        }
      }
    });

    if (operatorPolicy) {
      test('lets the operator’s pods reach DNS and the services’ gRPC ports only, and nothing reach them', () => {
        assert.deepEqual(operatorPolicy.spec.policyTypes, ['Ingress', 'Egress']);
        assert.deepEqual(operatorPolicy.spec.ingress, []);
        const reached = [];
        for (const rule of operatorPolicy.spec.egress) {
          const ports = rule.ports.map((port) => port.port);
          if (ports.includes(53)) {
            assert.deepEqual(ports, [53, 53]);
            continue;
          }
          assert.equal(rule.to.length, 1);
          const labels = rule.to[0].podSelector.matchLabels;
          assert.equal(labels['calsync.io/role'], 'server');
          const service = labels['app.kubernetes.io/component'];
          const grpcPort = ofKind('Service')
            .find((candidate) => component(candidate) === service)
            .spec.ports.find((port) => port.name === 'grpc').port;
          assert.deepEqual(ports, [grpcPort], `${service}: only its gRPC port`);
          reached.push(service);
        }
        assert.deepEqual(reached.sort(), Object.keys(grpcCallers).sort());
      });
    }

    test('issues certificates named for their identity: servers and clients, the operator a client only with operator.enabled', () => {
      const certificates = ofKind('Certificate');
      if (certificates.length === 0) return;
      const byName = new Map(certificates.map((certificate) => [certificate.spec.commonName, certificate]));
      for (const service of services) {
        const usages = byName.get(`calsync-${service}`)?.spec.usages;
        assert.ok(usages?.includes('server auth') && usages.includes('client auth'), service);
      }
      const operator = byName.get('calsync-operator');
      assert.equal(Boolean(operator), Boolean(operatorPolicy), 'an operator certificate only with operator.enabled');
      if (operator) {
        assert.deepEqual(operator.spec.usages, ['digital signature', 'client auth']);
        assert.deepEqual(operator.spec.dnsNames, ['calsync-operator']);
        assert.deepEqual(operator.spec.issuerRef, byName.get('calsync-identity').spec.issuerRef);
        assert.equal(component(operator), 'operator');
      }
    });

    test('deploys the Calendly simulator only with the dev flag, and then the services call it', () => {
      const simulator = objects.filter((object) => component(object) === 'calendly-sim');
      const deployed = simulator.some((object) => object.kind === 'Deployment');
      const identity = deployments.find((candidate) => component(candidate) === 'identity');
      const apiUrl = identity.spec.template.spec.containers[0].env.find((e) => e.name === 'CALENDLY_API_URL')?.value;
      assert.equal(
        deployed,
        /calendly-sim/.test(apiUrl ?? ''),
        `simulator deployed: ${deployed}, Calendly at ${apiUrl}`,
      );
      if (name === 'dev') assert.ok(deployed);
      if (name === 'default' || name === 'production') assert.deepEqual(simulator, []);
    });

    test('every gRPC server and client presents a certificate from its own Secret, unless plaintext is chosen', () => {
      const secretOwners = new Set();
      for (const service of services) {
        const pod = deployments.find((candidate) => component(candidate) === service).spec.template.spec;
        const container = pod.containers[0];
        const env = Object.fromEntries((container.env ?? []).map((variable) => [variable.name, variable.value]));
        if (env.GRPC_PLAINTEXT === 'true') {
          assert.notEqual(name, 'production', `${service}: production runs gRPC in plaintext`);
          continue;
        }
        assert.equal(env.GRPC_TLS_CERT_FILE, '/var/run/calsync/grpc/tls.crt', service);
        const mount = container.volumeMounts.find((candidate) => candidate.mountPath === '/var/run/calsync/grpc');
        assert.ok(mount?.readOnly && !mount.subPath, `${service}: certificate not mounted read-only as a folder`);
        const volume = pod.volumes.find((candidate) => candidate.name === mount.name);
        assert.ok(!secretOwners.has(volume.secret.secretName), `${service} shares a certificate Secret`);
        secretOwners.add(volume.secret.secretName);
      }
    });

    if (name === 'production') {
      test('never runs internal gRPC in plaintext', () => {
        for (const deployment of deployments) {
          for (const container of deployment.spec.template.spec.containers) {
            const plaintext = (container.env ?? []).find((variable) => variable.name === 'GRPC_PLAINTEXT');
            assert.equal(plaintext, undefined, `${container.name}: GRPC_PLAINTEXT is set in production`);
          }
        }
      });

      test('runs three replicas of every service, autoscaled from three', () => {
        for (const service of services) {
          const deployment = deployments.find((candidate) => component(candidate) === service);
          const hpa = ofKind('HorizontalPodAutoscaler').find((candidate) => component(candidate) === service);
          assert.ok(hpa, `${service}: no HorizontalPodAutoscaler`);
          assert.equal(hpa.spec.minReplicas, 3, service);
          assert.equal(deployment.spec.replicas, undefined, `${service}: replicas fights the autoscaler`);
        }
      });
    }
  });
}
