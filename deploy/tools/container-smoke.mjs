// The container smoke test (deploy/smoke.sh runs it): every service's image run as a container
// exactly as the chart's pods would run it. From `helm template` of the chart with
// ci/smoke-values.yaml it takes each Deployment's image, environment (Secrets resolved as the
// kubelet resolves them), user, read-only root, dropped capabilities, no-new-privileges, /tmp
// volume, migration step (init container or Job), probes and grace period; then it runs the
// migrations, starts every pod, waits for readiness through the declared probes, connects a
// user through the simulator, books, sees the meeting through the gateway, and SIGTERMs every
// container, each of which must exit 0 within its grace period.
//
// Secrets the chart mounts but does not render (the services' gRPC certificates) are issued for
// the run by a throwaway CA and mounted read-only, as the kubelet mounts a Secret volume.
//
// Containers use the host's network, so the chart's fixed ports must be free on this machine
// (reserved against ephemeral use for the run, and waited for when briefly held);
// Services' names resolve to 127.0.0.1 in every container. Postgres and NATS are the test ones
// (CALSYNC_TEST_DATABASE_URL, CALSYNC_TEST_NATS_URL); a fresh database and subject prefix per run.
//
//   HELM, ENGINE (docker|podman), IMAGE_TAG (default dev), IMAGE_REPOSITORY_PREFIX (default calsync-)
import { execFile as execFileCallback } from 'node:child_process';
import { connect, createServer } from 'node:net';
import { chmodSync, chownSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { environmentOf, renderedObjects, secretsOf } from './rendered.mjs';

const execFile = promisify(execFileCallback);
const deployDir = join(dirname(fileURLToPath(import.meta.url)), '..');
const repoDir = join(deployDir, '..');
const requireFromRepo = createRequire(join(repoDir, 'package.json'));
const { createTestDatabase, eventually, grpcHealth, testNatsUrl, testSubjectPrefix } =
  requireFromRepo('@calsync/service-kit/testing');
const { signDevJwt } = requireFromRepo('./scripts/lib/dev-jwt.cjs');

const engine = process.env.ENGINE ?? 'docker';
const helm = process.env.HELM ?? 'helm';
const imageTag = process.env.IMAGE_TAG ?? 'dev';
const imagePrefix = process.env.IMAGE_REPOSITORY_PREFIX ?? 'calsync-';
const runId = `${process.pid}-${Date.now().toString(36)}`;
const started = Date.now();

const say = (message) => console.log(`==> ${message} (${((Date.now() - started) / 1000).toFixed(1)}s)`);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function run(command, args, options = {}) {
  try {
    return (await execFile(command, args, { maxBuffer: 64 * 1024 * 1024, ...options })).stdout;
  } catch (error) {
    throw new Error(`${command} ${args.slice(0, 3).join(' ')} ...: ${error.stderr || error.message}`.trim());
  }
}

/** The chart rendered with the smoke values, this run's database and NATS, and the local images. */
async function render(databaseUrl, natsSubjectPrefix, workDir) {
  const services = ['identity', 'subscription', 'meetings', 'gateway', 'calendly-sim'];
  const images = services.flatMap((service) => [
    '--set-string',
    `${service}.image.repository=${imagePrefix}${service},${service}.image.tag=${imageTag}`,
  ]);
  const manifest = await run(helm, [
    'template',
    'calsync',
    join(deployDir, 'helm', 'calsync'),
    '--namespace',
    'calsync',
    '-f',
    join(deployDir, 'helm', 'calsync', 'ci', 'smoke-values.yaml'),
    '--set-string',
    `secrets.values.DATABASE_URL=${databaseUrl}`,
    '--set-string',
    `externalNats.url=${testNatsUrl()}`,
    '--set-string',
    `natsSubjectPrefix=${natsSubjectPrefix}`,
    ...images,
  ]);
  const file = join(workDir, 'rendered.yaml');
  writeFileSync(file, manifest);
  return renderedObjects(file);
}

/** `docker run` arguments for one container of a pod, from the pod's and container's spec. */
function runArguments({ name, pod, container, secrets, hosts, workDir }) {
  const security = { ...pod.securityContext, ...container.securityContext };
  const args = ['run', '--detach', '--name', name, '--label', `io.calsync.smoke=${runId}`, '--network', 'host'];
  for (const host of hosts) args.push('--add-host', `${host}:127.0.0.1`);
  if (security.runAsUser === undefined) throw new Error(`${container.name}: the chart sets no runAsUser`);
  args.push('--user', `${security.runAsUser}:${security.runAsGroup ?? security.runAsUser}`);
  if (security.readOnlyRootFilesystem) args.push('--read-only');
  for (const capability of security.capabilities?.drop ?? []) args.push('--cap-drop', capability);
  if (security.allowPrivilegeEscalation === false) args.push('--security-opt', 'no-new-privileges');
  if (security.privileged) args.push('--privileged');
  const volumes = new Map((pod.volumes ?? []).map((volume) => [volume.name, volume]));
  for (const mount of container.volumeMounts ?? []) {
    const volume = volumes.get(mount.name);
    if (volume?.emptyDir) {
      const size = volume.emptyDir.sizeLimit
        ? `,size=${volume.emptyDir.sizeLimit.replace(/i$/, '').toLowerCase()}`
        : '';
      args.push('--tmpfs', `${mount.mountPath}:rw,mode=1777${size}`);
    } else if (volume?.secret) {
      const data = secrets(volume.secret.secretName);
      if (!data) throw new Error(`${container.name}: Secret ${volume.secret.secretName} is not there to mount`);
      // As the kubelet writes a Secret volume: root-owned files with the volume's mode, in the
      // pod's fsGroup, so the service reads them only through that group.
      const group = pod.securityContext?.fsGroup ?? 0;
      const dir = mkdtempSync(join(workDir, `${mount.name}-`));
      chmodSync(dir, 0o750);
      chownSync(dir, 0, group);
      for (const [key, value] of Object.entries(data)) {
        const file = join(dir, key);
        writeFileSync(file, value);
        chmodSync(file, volume.secret.defaultMode ?? 0o644);
        chownSync(file, 0, group);
      }
      args.push('--volume', `${dir}:${mount.mountPath}:ro`);
    } else {
      throw new Error(`${container.name}: volume ${mount.name} of a kind this test does not know`);
    }
  }
  for (const [key, value] of Object.entries(environmentOf(container, secrets))) args.push('--env', `${key}=${value}`);
  const command = container.command ?? [];
  if (command.length > 0) args.push('--entrypoint', command[0]);
  args.push(container.image, ...command.slice(1), ...(container.args ?? []));
  return args;
}

async function state(name) {
  const [status, exitCode] = (await run(engine, ['inspect', '--format', '{{.State.Status}} {{.State.ExitCode}}', name]))
    .trim()
    .split(' ');
  return { status, exitCode: Number(exitCode) };
}

async function logs(name, lines = 30) {
  const { stdout, stderr } = await execFile(engine, ['logs', '--tail', String(lines), name]).catch((error) => error);
  return `${stdout ?? ''}${stderr ?? ''}`.trim();
}

/** Runs a container to completion (a migration step); it must exit 0. */
async function runToCompletion(name, args, deadlineMs) {
  await run(engine, args);
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    const { status, exitCode } = await state(name);
    if (status === 'exited' || status === 'dead') {
      if (exitCode !== 0) throw new Error(`${name} exited ${exitCode}:\n${await logs(name)}`);
      return;
    }
    if (Date.now() > deadline)
      throw new Error(`${name} still running after ${deadlineMs / 1000}s:\n${await logs(name)}`);
    await sleep(250);
  }
}

/** One probe of the chart's kind (grpc, httpGet, tcpSocket or exec), as the kubelet runs it against host-network pods. */
async function probe(spec, container, name) {
  const timeoutMs = (spec.timeoutSeconds ?? 1) * 1000;
  const portOf = (port) =>
    Number.isInteger(port) ? port : container.ports.find((candidate) => candidate.name === port).containerPort;
  if (spec.exec) {
    await run(engine, ['exec', name, ...spec.exec.command], { timeout: timeoutMs });
    return;
  }
  if (spec.tcpSocket) {
    await new Promise((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port: portOf(spec.tcpSocket.port), timeout: timeoutMs });
      socket.once('connect', () => {
        socket.destroy();
        resolve();
      });
      socket.once('timeout', () => {
        socket.destroy();
        reject(new Error('tcpSocket: timed out'));
      });
      socket.once('error', reject);
    });
    return;
  }
  if (spec.grpc) {
    const status = await grpcHealth(`127.0.0.1:${spec.grpc.port}`, spec.grpc.service ?? '');
    if (status !== 'SERVING') throw new Error(`health ${spec.grpc.service ?? "''"}: ${status}`);
    return;
  }
  if (spec.httpGet) {
    const response = await fetch(`http://127.0.0.1:${portOf(spec.httpGet.port)}${spec.httpGet.path}`, {
      signal: AbortSignal.timeout(timeoutMs),
    });
    if (response.status < 200 || response.status >= 400)
      throw new Error(`GET ${spec.httpGet.path}: ${response.status}`);
    return;
  }
  throw new Error(`${container.name}: a probe this test does not know: ${JSON.stringify(spec)}`);
}

/**
 * Start-up probe, then readiness and liveness, each at the chart's period. Start-up may fail
 * failureThreshold times; readiness is retried as the kubelet retries it, until the start-up
 * budget is spent (a pod not yet ready is simply kept out of its Service).
 */
async function waitReady(name, container) {
  const startup = container.startupProbe;
  if (!startup) throw new Error(`${container.name} declares no startupProbe`);
  const deadline = Date.now() + (startup.periodSeconds ?? 10) * (startup.failureThreshold ?? 3) * 1000;
  for (const kind of ['startupProbe', 'readinessProbe', 'livenessProbe']) {
    const spec = container[kind];
    if (!spec) throw new Error(`${container.name} declares no ${kind}`);
    for (;;) {
      try {
        await probe(spec, container, name);
        break;
      } catch (error) {
        const { status } = await state(name);
        if (status !== 'running') throw new Error(`${name} is ${status}:\n${await logs(name)}`);
        if (Date.now() > deadline) throw new Error(`${name}: ${kind} failed: ${error.message}\n${await logs(name)}`);
        await sleep((spec.periodSeconds ?? 10) * 1000);
      }
    }
  }
}

/**
 * The Secrets an operator provides beside the chart that pods mount: each service's gRPC
 * certificate (tls.crt, tls.key, ca.crt; common name calsync-<service>), issued here by a
 * throwaway CA made for this run.
 */
async function certificateSecrets(objects, chartSecrets, workDir) {
  const wanted = new Map();
  for (const workload of objects.filter((object) => object.kind === 'Deployment' || object.kind === 'Job')) {
    for (const volume of workload.spec.template.spec.volumes ?? []) {
      if (volume.secret && !chartSecrets.has(volume.secret.secretName)) {
        wanted.set(volume.secret.secretName, `calsync-${workload.metadata.labels['app.kubernetes.io/component']}`);
      }
    }
  }
  if (wanted.size === 0) return new Map();
  const { createThrowawayCa } = requireFromRepo('@calsync/service-kit/testing');
  const ca = await createThrowawayCa({ dir: join(workDir, 'ca') });
  const provided = new Map();
  for (const [secretName, identity] of wanted) {
    const files = await ca.files(identity);
    provided.set(secretName, {
      'tls.crt': readFileSync(files.certFile, 'utf8'),
      'tls.key': readFileSync(files.keyFile, 'utf8'),
      'ca.crt': readFileSync(files.caFile, 'utf8'),
    });
  }
  say(`issued ${provided.size} certificates from a throwaway CA: ${[...wanted.values()].join(', ')}`);
  return provided;
}

// The chart's gRPC ports (50051-50053) lie inside Linux's ephemeral range, so any outgoing
// connection on this machine (the test database's, dockerd's) may hold one as its local port for
// a while: one CI run failed on exactly that. Reserving them keeps new outgoing connections off
// them (best effort: root only); a port still held is waited for, then named with its holder.
const reservedPortsFile = '/proc/sys/net/ipv4/ip_local_reserved_ports';

function reservePorts(ports) {
  let before;
  try {
    before = readFileSync(reservedPortsFile, 'utf8').trim();
    writeFileSync(reservedPortsFile, [before, ...ports].filter(Boolean).join(','));
  } catch {
    return () => {};
  }
  return () => {
    try {
      writeFileSync(reservedPortsFile, before === '' ? '\n' : before);
    } catch {
      // Reserved ports only keep ephemeral connections off them; leaving them reserved is harmless.
    }
  };
}

async function portsFree(ports, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const busy = [];
    for (const port of ports) if (!(await portFree(port))) busy.push(port);
    if (busy.length === 0) return;
    if (Date.now() > deadline) {
      const holders = await execFile('ss', ['-Htanp'])
        .then(({ stdout }) =>
          stdout
            .split('\n')
            .filter((line) => busy.some((port) => new RegExp(`:${port}\\s`).test(line)))
            .join('\n'),
        )
        .catch((error) => `(ss failed: ${error.message})`);
      throw new Error(
        `ports the chart fixes are still in use on this machine after ${timeoutMs / 1000}s: ${busy.join(', ')}\n${holders}`,
      );
    }
    await sleep(500);
  }
}

async function portFree(port) {
  return new Promise((resolve) => {
    const server = createServer()
      .once('error', () => resolve(false))
      .listen({ port, host: '0.0.0.0' }, () => server.close(() => resolve(true)));
  });
}

async function http(url, { method = 'GET', token, body } = {}) {
  const response = await fetch(url, {
    method,
    headers: {
      accept: 'application/json',
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body ? { 'content-type': 'application/json' } : {}),
    },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${url}: ${response.status} ${text.slice(0, 300)}`);
  return text ? JSON.parse(text) : null;
}

async function main() {
  const workDir = mkdtempSync(join(tmpdir(), 'calsync-smoke-'));
  const database = await createTestDatabase('smoke');
  const containers = [];
  let releasePorts = () => {};
  try {
    const objects = await render(database.url, testSubjectPrefix('smoke'), workDir);
    const chartSecrets = secretsOf(objects);
    const providedSecrets = await certificateSecrets(objects, chartSecrets, workDir);
    const secrets = (name) => chartSecrets.get(name) ?? providedSecrets.get(name);
    const hosts = objects.filter((object) => object.kind === 'Service').map((service) => service.metadata.name);
    const pods = objects
      .filter((object) => object.kind === 'Deployment')
      .map((deployment) => ({
        component: deployment.metadata.labels['app.kubernetes.io/component'],
        pod: deployment.spec.template.spec,
      }));
    const jobs = objects
      .filter((object) => object.kind === 'Job')
      .map((job) => ({ component: job.metadata.labels['app.kubernetes.io/component'], pod: job.spec.template.spec }));
    say(`rendered ${pods.length} Deployments and ${jobs.length} Jobs: ${pods.map((p) => p.component).join(', ')}`);

    const ports = pods.flatMap(({ pod }) => pod.containers.flatMap((c) => (c.ports ?? []).map((p) => p.containerPort)));
    releasePorts = reservePorts(ports);
    await portsFree(ports);

    const start = async (name, pod, container) => {
      containers.push(name);
      return runArguments({ name, pod, container, secrets, hosts, workDir });
    };
    // Migration Jobs first (as a release's pods would wait on them), then every pod at once,
    // each with its init containers before its main container, as the kubelet starts them.
    for (const { component, pod } of jobs) {
      for (const container of pod.containers) {
        const name = `calsync-smoke-${component}-job-${container.name}`;
        await runToCompletion(name, await start(name, pod, container), 120_000);
        say(`${component}: migration Job exited 0`);
      }
    }
    await Promise.all(
      pods.map(async ({ component, pod }) => {
        for (const container of pod.initContainers ?? []) {
          const name = `calsync-smoke-${component}-${container.name}`;
          await runToCompletion(name, await start(name, pod, container), 120_000);
          say(`${component}: init container ${container.name} exited 0`);
        }
        for (const container of pod.containers) {
          const name = `calsync-smoke-${component}`;
          await run(engine, await start(name, pod, container));
          await waitReady(name, container);
          say(`${component}: started, live and ready through the chart's probes`);
        }
      }),
    );

    const gatewayPort = pods.find((p) => p.component === 'gateway').pod.containers[0].ports[0].containerPort;
    const simPort = pods.find((p) => p.component === 'calendly-sim').pod.containers[0].ports[0].containerPort;
    const gateway = `http://127.0.0.1:${gatewayPort}`;
    const simulator = `http://127.0.0.1:${simPort}`;
    const gatewayEnv = environmentOf(pods.find((p) => p.component === 'gateway').pod.containers[0], secrets);
    const token = signDevJwt(`smoke-user-${runId}`, gatewayEnv.AUTH_JWT_SECRET);
    const calendlyUser = await http(`${simulator}/_sim/users`, {
      method: 'POST',
      body: { name: 'Smoke Tester', email: `smoke-${runId}@example.test`, plan: 'standard' },
    });
    await http(`${gateway}/api/calendly/token`, {
      method: 'POST',
      token,
      body: { token: calendlyUser.personal_access_token },
    });
    say('a user connected Calendly through the gateway with a simulator token');
    const startTime = new Date(Math.ceil(Date.now() / 3_600_000) * 3_600_000 + 24 * 3_600_000);
    const booking = await http(`${simulator}/_sim/bookings`, {
      method: 'POST',
      body: {
        user: calendlyUser.uri,
        invitee: { name: 'Smoke Invitee', email: `invitee-${runId}@example.test` },
        start_time: startTime.toISOString(),
        end_time: new Date(startTime.getTime() + 30 * 60_000).toISOString(),
      },
    });
    await eventually(
      async () => {
        const { meetings } = await http(`${gateway}/api/meetings?limit=100`, { token });
        const meeting = meetings.find((m) => m.scheduledEventUri === booking.scheduled_event.uri);
        if (meeting?.status !== 'active') throw new Error(`not there yet: ${JSON.stringify(meetings)}`);
      },
      { timeoutMs: 30_000, intervalMs: 200, what: 'the booked meeting through the gateway' },
    );
    say('the booked meeting is visible through the gateway');

    // Every pod stopped at once, as a namespace deletion or a node drain stops them.
    const stops = await Promise.all(
      pods.map(async ({ component, pod }) => {
        const name = `calsync-smoke-${component}`;
        const graceMs = (pod.terminationGracePeriodSeconds ?? 30) * 1000;
        const signalled = Date.now();
        await run(engine, ['kill', '--signal', 'TERM', name]);
        for (;;) {
          const { status, exitCode } = await state(name);
          const elapsed = Date.now() - signalled;
          if (status === 'exited') return { component, exitCode, elapsed, graceMs };
          if (elapsed > graceMs) return { component, exitCode: null, elapsed, graceMs };
          await sleep(100);
        }
      }),
    );
    const failed = stops.filter((stop) => stop.exitCode !== 0);
    for (const stop of stops) {
      say(
        `${stop.component}: SIGTERM -> ${stop.exitCode === null ? 'still running' : `exit ${stop.exitCode}`} after ` +
          `${(stop.elapsed / 1000).toFixed(1)}s (grace ${stop.graceMs / 1000}s)`,
      );
    }
    if (failed.length > 0) {
      const details = await Promise.all(
        failed.map(async (f) => `${f.component}:\n${await logs(`calsync-smoke-${f.component}`)}`),
      );
      throw new Error(`not every container exited 0 within its grace period:\n${details.join('\n')}`);
    }
    say('container smoke test passed');
  } finally {
    if (containers.length > 0) await execFile(engine, ['rm', '--force', ...containers]).catch(() => {});
    await database.drop().catch(() => {});
    releasePorts();
    rmSync(workDir, { recursive: true, force: true });
  }
}

main().catch((error) => {
  console.error(`container smoke test failed: ${error.stack ?? error}`);
  process.exit(1);
});
