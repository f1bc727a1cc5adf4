// The seed's way of verifying a delivery, served over the same gRPC contract so the benchmark
// can put it side by side with subscription: on every request it reads every user's key, and
// tries them one after another until one matches (O(N) key reads and HMACs per delivery).
// It is a yardstick, never deployed. Env: DATABASE_URL, DATABASE_SCHEMA, SEALING_KEYS
// (kid=base64,...), SEALING_ACTIVE_KEY_ID, GRPC_PORT (0 = any), GRPC_TLS_CERT_FILE, GRPC_TLS_KEY_FILE,
// GRPC_TLS_CA_FILE (mutual TLS, as subscription serves). Logs `ready` with grpcPort.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const kit = require('../../../services/service-kit/dist/index.js');
const { subscriptionV1 } = require('../../../proto/dist/src/index.js');

const env = process.env;
const log = kit.createLogger({ service: 'seed-verifier', level: 'info' });
const keys = new Map(
  env.SEALING_KEYS.split(',').map((entry) => {
    const at = entry.indexOf('=');
    return [entry.slice(0, at), Buffer.from(entry.slice(at + 1), 'base64')];
  }),
);
const sealer = kit.createSealer({ keys, activeKeyId: env.SEALING_ACTIVE_KEY_ID });
const pool = kit.createPool({ url: env.DATABASE_URL, schema: env.DATABASE_SCHEMA, max: 4, log });

async function verifyTheSeedWay(request) {
  const header = request.signatureHeader;
  const t = /(?:^|,)t=([^,]*)/.exec(header)?.[1];
  const v1 = /(?:^|,)v1=([^,]*)/.exec(header)?.[1];
  if (!t || !v1) throw new kit.GrpcError(kit.GrpcStatus.UNAUTHENTICATED, 'bad signature');
  const given = Buffer.from(v1, 'hex');
  const { rows } = await pool.query(
    "SELECT hook_id, user_id, calendly_user_uri, signing_key_sealed FROM webhooks WHERE signing_key_source = 'subscription'",
  );
  for (const row of rows) {
    const key = sealer.open(row.signing_key_sealed, `webhook:${row.hook_id}`);
    const expected = createHmac('sha256', key).update(`${t}.`).update(request.rawBody).digest();
    if (expected.length === given.length && timingSafeEqual(expected, given)) {
      return {
        userId: row.user_id,
        calendlyUserUri: row.calendly_user_uri,
        eventType: '',
        deliveryKey: '',
        hookId: row.hook_id,
        eventCreatedAt: undefined,
      };
    }
  }
  throw new kit.GrpcError(kit.GrpcStatus.UNAUTHENTICATED, 'no key matches');
}

const unimplemented = async () => {
  throw new kit.GrpcError(kit.GrpcStatus.UNIMPLEMENTED, 'not part of the seed yardstick');
};
const registry = kit.createMetricsRegistry('seed-verifier');
const server = kit.createGrpcServer({
  services: [
    kit.bindService(
      'calsync.subscription.v1.SubscriptionService',
      subscriptionV1.SubscriptionServiceService,
      {
        verifyAndResolveUser: verifyTheSeedWay,
        ensureUserWebhook: unimplemented,
        listUserWebhooks: unimplemented,
        removeUserWebhooks: unimplemented,
        reconcile: unimplemented,
      },
      {
        verifyAndResolveUser: [kit.grpcIdentities.gateway],
        ensureUserWebhook: [],
        listUserWebhooks: [],
        removeUserWebhooks: [],
        reconcile: [],
      },
      log,
    ),
  ],
  host: '127.0.0.1',
  port: Number(env.GRPC_PORT ?? 0),
  security: {
    mode: 'mtls',
    certFile: env.GRPC_TLS_CERT_FILE,
    keyFile: env.GRPC_TLS_KEY_FILE,
    caFile: env.GRPC_TLS_CA_FILE,
    reloadIntervalMs: 60_000,
  },
  log: kit.createLogger({ service: 'seed-verifier', level: 'warn' }),
  registry,
  shutdownTimeoutMs: 2_000,
});
const grpcPort = await server.start();
server.setServing(true);
log.info({ grpcPort }, 'ready');
const stop = async () => {
  await server.stop();
  await pool.end();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
