// One load-generating thread of the verify benchmark: its own gRPC channel, `workers` calls in
// flight, until the time or request budget runs out. Posts back latencies (ms) and failures.
// `method: 'health'` makes plain grpc.health.v1 Check calls instead (the transport's ceiling).
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

const { address, security, requests, durationMs, maxRequests, workers, method } = workerData;
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
const latencies = [];
let next = 0;
let wrong = 0;
const started = performance.now();
const deadline = started + durationMs;
const worker = async () => {
  while (performance.now() < deadline && next < maxRequests) {
    const { request, userId } = requests[next++ % requests.length];
    const sent = performance.now();
    try {
      if (method === 'health') {
        if (!serving.equals(await check())) wrong += 1;
      } else {
        const answer = await client.verifyAndResolveUser(request, { timeoutMs: 120_000 });
        if (answer.userId !== userId) wrong += 1;
      }
    } catch {
      wrong += 1;
    }
    latencies.push(performance.now() - sent);
  }
};
await Promise.all(Array.from({ length: workers }, worker));
const seconds = (performance.now() - started) / 1000;
client.close();
health.close();
parentPort.postMessage({ latencies, seconds, wrong });
