// One load-generating thread of the verify benchmark: its own gRPC channel, `workers` calls in
// flight, until the time or request budget runs out. Posts back latencies (ms) and failures.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parentPort, workerData } from 'node:worker_threads';

const require = createRequire(import.meta.url);
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const kit = require(join(root, 'services', 'service-kit', 'dist', 'index.js'));
const { subscriptionV1 } = require(join(root, 'proto', 'dist', 'src', 'index.js'));

const { address, security, requests, durationMs, maxRequests, workers } = workerData;
const client = kit.createGrpcClient(subscriptionV1.SubscriptionServiceService, address, { security });
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
      const answer = await client.verifyAndResolveUser(request, { timeoutMs: 120_000 });
      if (answer.userId !== userId) wrong += 1;
    } catch {
      wrong += 1;
    }
    latencies.push(performance.now() - sent);
  }
};
await Promise.all(Array.from({ length: workers }, worker));
const seconds = (performance.now() - started) / 1000;
client.close();
parentPort.postMessage({ latencies, seconds, wrong });
