// One load-generating thread of the verify benchmark: its own gRPC channels, kept open between
// runs. Each `run` message sends `workers` calls in flight until its time or request budget runs
// out, waits for the calls still in flight, and posts back latencies (ms), seconds and failures;
// `close` ends the thread. `method: 'health'` makes plain grpc.health.v1 Check calls instead of
// VerifyAndResolveUser (the transport's ceiling on the same server and channel settings).
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parentPort, workerData } from 'node:worker_threads';

const require = createRequire(import.meta.url);
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const kit = require(join(root, 'services', 'service-kit', 'dist', 'index.js'));
const grpc = require('@grpc/grpc-js');
const { subscriptionV1 } = require(join(root, 'proto', 'dist', 'src', 'index.js'));

const { address, security } = workerData;
const client = kit.createGrpcClient(subscriptionV1.SubscriptionServiceService, address, { security });
// HealthCheckRequest{service: ""} is the empty message; HealthCheckResponse{status: SERVING} is 08 01.
const health = new grpc.Client(address, kit.channelCredentials(security, kit.grpcIdentities.subscription), {
  'grpc.ssl_target_name_override': kit.grpcIdentities.subscription,
});
const serving = Buffer.from([0x08, 0x01]);
const check = () =>
  new Promise((resolve, reject) =>
    health.makeUnaryRequest(
      '/grpc.health.v1.Health/Check',
      () => Buffer.alloc(0),
      (bytes) => bytes,
      {},
      new grpc.Metadata(),
      { deadline: Date.now() + 120_000 },
      (error, answer) => (error ? reject(error) : resolve(answer)),
    ),
  );

let requests = [];
let next = 0;

async function run({ durationMs, maxRequests, workers, method }) {
  const latencies = [];
  let sent = 0;
  let wrong = 0;
  let firstFailure;
  const started = performance.now();
  const deadline = started + durationMs;
  const worker = async () => {
    while (performance.now() < deadline && sent < maxRequests) {
      sent += 1;
      const { request, userId } = requests[next++ % requests.length];
      const at = performance.now();
      try {
        if (method === 'health') {
          if (!serving.equals(await check())) {
            wrong += 1;
            firstFailure ??= 'Check answered other than SERVING';
          }
        } else {
          const answer = await client.verifyAndResolveUser(request, { timeoutMs: 120_000 });
          if (answer.userId !== userId) {
            wrong += 1;
            firstFailure ??= `verify answered user ${answer.userId}, not ${userId}`;
          }
        }
      } catch (error) {
        wrong += 1;
        firstFailure ??= `${method}: ${error.message}`;
      }
      latencies.push(performance.now() - at);
    }
  };
  await Promise.all(Array.from({ length: workers }, worker));
  return { latencies, seconds: (performance.now() - started) / 1000, wrong, firstFailure };
}

parentPort.on('message', async (message) => {
  if (message.type === 'requests') {
    requests = message.requests;
    next = 0;
    parentPort.postMessage({ type: 'ok' });
  } else if (message.type === 'run') {
    parentPort.postMessage({ type: 'ran', ...(await run(message)) });
  } else if (message.type === 'close') {
    client.close();
    health.close();
    parentPort.close();
  }
});
// Connect both channels before the first measured call: a TLS handshake is not a verify.
await Promise.all([
  client.waitForReady(10_000),
  new Promise((resolve, reject) =>
    health.waitForReady(Date.now() + 10_000, (error) => (error ? reject(error) : resolve())),
  ),
]);
parentPort.postMessage({ type: 'ready' });
