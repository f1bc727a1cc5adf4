// Starts the whole calsync system as real processes, wired the way production wires it:
// the Calendly simulator, identity, subscription, meetings and gateway, over real gRPC and
// NATS JetStream against one Postgres. `npm run dev` and the end-to-end tests both use it.
'use strict';
const { randomBytes } = require('node:crypto');
const { join } = require('node:path');
const { devJwtTtlSeconds } = require('./dev-jwt.cjs');
const { freePort } = require('./local-infra.cjs');
const { chartValues, nodeOptionsEnv } = require('./node-options.cjs');

/** Fresh secrets for one run: nothing here is ever a production value. */
function devSecrets() {
  return {
    sealingKeys: `dev=${randomBytes(32).toString('base64')}`,
    applicationSigningKey: randomBytes(32).toString('base64url'),
    clientId: 'calsync-dev-client',
    clientSecret: randomBytes(24).toString('base64url'),
    jwtSecret: randomBytes(32).toString('base64url'),
  };
}

/** The port variables that bring a service back where its `ready` line says it was serving. */
function portsOf(ready) {
  const ports = {};
  if (ready.grpcPort !== undefined) ports.GRPC_PORT = String(ready.grpcPort);
  if (ready.metricsPort !== undefined) ports.METRICS_PORT = String(ready.metricsPort);
  return ports;
}

/**
 * Starts every service and resolves { urls, processes, secrets, stop }. `onLine(service, line)`
 * receives each log line (JSON) as it is written. The services call each other over mutual
 * TLS with certificates from a throwaway CA made in `certsDir` (a temporary folder, removed
 * at stop, unless given).
 */
async function startSystem({
  rootDir,
  databaseUrl,
  natsUrl,
  gatewayPort = 0,
  simPort = 0,
  host = '127.0.0.1',
  secrets = devSecrets(),
  natsSubjectPrefix = 'calsync',
  demoDir,
  logLevel = 'info',
  extraEnv = {},
  onLine = () => {},
  maxLines,
  certsDir,
  nodeArgs = {},
}) {
  const { spawnService, createThrowawayCa } = require(join(rootDir, 'services/service-kit/dist/testing/index.js'));
  const { grpcIdentities } = require(join(rootDir, 'services/service-kit/dist/index.js'));
  // Certificates re-read as often as deployed (the chart's grpcTls.reloadIntervalMs), not the
  // throwaway CA's default second: grpc-js rebuilds every TLS context at each read, changed or
  // not, which cost each service ~0.6% of a core here for a rotation nothing local does.
  const ca = await createThrowawayCa({
    ...(certsDir ? { dir: certsDir } : {}),
    reloadIntervalMs: chartValues(rootDir).grpcTls.reloadIntervalMs,
  });
  const tls = (service) => ca.env(grpcIdentities[service]);
  const entry = (service) => join(rootDir, 'services', service, 'dist', 'main.js');
  const processes = [];
  const stop = async () => {
    for (const running of [...processes].reverse()) await running.process.stop();
    if (!certsDir) ca.remove();
  };
  const envs = new Map();
  const start = async (service, env) => {
    envs.set(service, env);
    const running = await spawnService({
      entry: entry(service),
      // NODE_OPTIONS (heap limits) as the chart sets them, so the services run as deployed.
      env: { LOG_LEVEL: logLevel, ...nodeOptionsEnv(rootDir, service), ...env, ...(extraEnv[service] ?? {}) },
      readyTimeoutMs: 60_000,
      onLine: (line) => onLine(service, line),
      maxLines,
      nodeArgs: nodeArgs[service] ?? [],
    });
    processes.push({ service, process: running });
    return running;
  };
  /**
   * Starts a service again on the same ports and settings: after SIGKILL (a crash) with
   * `{ kill: true }`, else after SIGTERM (a rollout).
   */
  const restart = async (service, { kill = false } = {}) => {
    const at = processes.findIndex((running) => running.service === service);
    const [previous] = processes.splice(at, 1);
    await (kill ? previous.process.kill() : previous.process.stop());
    return start(service, { ...envs.get(service), ...portsOf(previous.process.ready) });
  };

  try {
    const gatewayHttpPort = gatewayPort || (await freePort());
    const publicBaseUrl = `http://${host}:${gatewayHttpPort}`;
    const sim = await start('calendly-sim', {
      SIM_PORT: String(simPort || (await freePort())),
      SIM_HOST: host,
      SIM_CLIENT_ID: secrets.clientId,
      SIM_CLIENT_SECRET: secrets.clientSecret,
      SIM_APPLICATION_SIGNING_KEY: secrets.applicationSigningKey,
    });
    const simUrl = `http://${host}:${sim.ready.httpPort}`;
    const calendly = {
      CALENDLY_API_URL: simUrl,
      CALENDLY_AUTH_URL: simUrl,
    };
    // Port 0: each service binds a port of its own, so no two can be handed the same one; a
    // restart takes the ports from the `ready` line of the process it replaces (portsOf).
    const grpcPorts = async () => ({ GRPC_HOST: host, GRPC_PORT: '0', METRICS_PORT: '0' });
    const common = {
      DATABASE_URL: databaseUrl,
      NATS_URL: natsUrl,
      NATS_SUBJECT_PREFIX: natsSubjectPrefix,
      SEALING_KEYS: secrets.sealingKeys,
      SEALING_ACTIVE_KEY_ID: secrets.sealingKeys.split('=')[0],
    };
    const identity = await start('identity', {
      ...(await tls('identity')),
      ...common,
      ...(await grpcPorts()),
      ...calendly,
      CALENDLY_CLIENT_ID: secrets.clientId,
      CALENDLY_CLIENT_SECRET: secrets.clientSecret,
    });
    const identityAddr = `${host}:${identity.ready.grpcPort}`;
    // Meetings first: subscription asks it for a user's import progress (and meetings never calls subscription).
    const meetings = await start('meetings', {
      ...(await tls('meetings')),
      ...common,
      ...(await grpcPorts()),
      ...calendly,
      IDENTITY_ADDR: identityAddr,
    });
    const meetingsAddr = `${host}:${meetings.ready.grpcPort}`;
    const subscription = await start('subscription', {
      ...(await tls('subscription')),
      ...common,
      ...(await grpcPorts()),
      ...calendly,
      IDENTITY_ADDR: identityAddr,
      MEETINGS_ADDR: meetingsAddr,
      PUBLIC_BASE_URL: publicBaseUrl,
      CALENDLY_WEBHOOK_SIGNING_KEY: secrets.applicationSigningKey,
    });
    const gateway = await start('gateway', {
      ...(await tls('gateway')),
      NATS_URL: natsUrl,
      NATS_SUBJECT_PREFIX: natsSubjectPrefix,
      HTTP_HOST: host,
      HTTP_PORT: String(gatewayHttpPort),
      PUBLIC_BASE_URL: publicBaseUrl,
      APP_URL: demoDir ? `${publicBaseUrl}/demo/` : publicBaseUrl,
      IDENTITY_ADDR: identityAddr,
      SUBSCRIPTION_ADDR: `${host}:${subscription.ready.grpcPort}`,
      MEETINGS_ADDR: meetingsAddr,
      AUTH_JWT_SECRET: secrets.jwtSecret,
      AUTH_JWT_MAX_AGE_SECONDS: String(devJwtTtlSeconds),
      ...(demoDir ? { DEMO_DIR: demoDir } : {}),
    });
    return {
      urls: {
        gateway: publicBaseUrl,
        simulator: simUrl,
        demo: `${publicBaseUrl}/demo/`,
        identity: identityAddr,
        subscription: `${host}:${subscription.ready.grpcPort}`,
        meetings: meetingsAddr,
      },
      certsDir: ca.dir,
      /** How a client presenting `identity`'s certificate (e.g. the operator's) reaches the services. */
      grpcSecurity: (identity) => ca.security(identity),
      processes: Object.fromEntries(processes.map(({ service, process }) => [service, process])),
      restart,
      secrets,
      gatewayReady: gateway.ready,
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

module.exports = { devSecrets, startSystem };
