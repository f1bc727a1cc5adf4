// The bench's outside world: a bare webhook receiver that checks every
// Calendly-Webhook-Signature with the key registered for its path, and the load generator that
// books meetings through the simulator's control API. Runs in a worker thread (the default, as
// receiver and load generator are other processes in a real load test) or on the caller's thread.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { isMainThread, parentPort } from 'node:worker_threads';

const require = createRequire(import.meta.url);
const { Pool } = require('undici');

function verify(header, raw, key) {
  const match = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(header ?? '');
  if (!match) return false;
  const mac = createHmac('sha256', key).update(`${match[1]}.`).update(raw).digest();
  return timingSafeEqual(mac, Buffer.from(match[2], 'hex'));
}

export async function createWorld() {
  const keys = new Map();
  let verified = 0;
  let rejected = 0;
  let expected = Infinity;
  let onComplete = () => {};
  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', () => {
      const key = keys.get(req.url);
      if (key && verify(req.headers['calendly-webhook-signature'], Buffer.concat(chunks), key)) verified += 1;
      else rejected += 1;
      res.writeHead(200).end();
      if (verified + rejected === expected) onComplete();
    });
  });
  server.keepAliveTimeout = 10_000;
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));

  return {
    url: `http://127.0.0.1:${server.address().port}`,
    setKey: (path, key) => keys.set(path, key),
    /** Books `bookings` meetings round-robin over `hosts`, and waits for `expected` deliveries. */
    async run({ simUrl, hosts, bookings, concurrency, expectedDeliveries, timeoutMs }) {
      expected = expectedDeliveries;
      const complete = new Promise((resolve) => (onComplete = resolve));
      const client = new Pool(simUrl, { connections: concurrency });
      const startedAt = Date.now();
      let next = 0;
      const base = Date.UTC(2031, 0, 1);
      const book = async () => {
        while (next < bookings) {
          const n = next++;
          const start = new Date(base + n * 3_600_000);
          const response = await client.request({
            method: 'POST',
            path: '/_sim/bookings',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({
              user: hosts[n % hosts.length],
              invitee: { name: `Invitee ${n}`, email: `invitee${n}@example.test` },
              start_time: start.toISOString(),
              end_time: new Date(start.getTime() + 1_800_000).toISOString(),
            }),
          });
          if (response.statusCode !== 201)
            throw new Error(`booking answered ${response.statusCode}: ${await response.body.text()}`);
          await response.body.dump();
        }
      };
      await Promise.all(Array.from({ length: concurrency }, book));
      const bookedAt = Date.now();
      let timer;
      const finished = await Promise.race([
        complete.then(() => true),
        new Promise((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs))),
      ]);
      clearTimeout(timer);
      const endedAt = Date.now();
      await client.close();
      return {
        verified,
        rejected,
        seconds: (endedAt - startedAt) / 1000,
        bookingSeconds: (bookedAt - startedAt) / 1000,
        timedOut: !finished,
      };
    },
    close: () =>
      new Promise((resolve) => {
        server.close(resolve);
        server.closeAllConnections();
      }),
  };
}

if (!isMainThread) {
  const world = await createWorld();
  parentPort.on('message', async (message) => {
    if (message.type === 'key') world.setKey(message.path, message.key);
    else if (message.type === 'run') parentPort.postMessage({ type: 'result', ...(await world.run(message)) });
    else if (message.type === 'close') {
      await world.close();
      parentPort.close();
    }
  });
  parentPort.postMessage({ type: 'ready', url: world.url });
}
