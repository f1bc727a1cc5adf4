import {
  connectNats,
  deadLetterStreamConfig,
  ensureConsumer,
  ensureStream,
  eventsStreamConfig,
  eventsStreamDefaults,
  natsNames,
  type JetStreamManager,
  type NatsConnection,
} from '@calsync/service-kit';
import { captureLogger, testNatsUrl, testSubjectPrefix, waitFor } from '@calsync/service-kit/testing';
import { AckPolicy, DeliverPolicy, nanos } from 'nats';
import { createDeadLetters } from './dead-letters';
import { createPullWorker } from './pull-worker';

// The worker against a real JetStream: what it does with many messages in hand when our own
// dependencies go down.

let nc: NatsConnection;
let jsm: JetStreamManager;
const names = natsNames(testSubjectPrefix('pullworker'));
const durable = 'pull-worker-test';

beforeAll(async () => {
  const { log } = captureLogger('pull-worker-test', 'warn');
  nc = await connectNats({ url: testNatsUrl(), name: 'pull-worker-test', log });
  jsm = await nc.jetstreamManager();
  await ensureStream(jsm, eventsStreamConfig(names, { ...eventsStreamDefaults, replicas: 1 }));
  await ensureStream(jsm, deadLetterStreamConfig(names, 1));
  await ensureConsumer(jsm, names.eventsStream, {
    durable_name: durable,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    ack_wait: nanos(30_000),
    max_deliver: 5,
  });
});

afterAll(async () => {
  for (const stream of [names.eventsStream, names.deadLetterStream]) await jsm?.streams.delete(stream);
  await nc?.close();
});

/** A promise and the means to settle it from outside. */
function deferred<T>() {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((settle) => (resolve = settle));
  return { promise, resolve };
}

it('holds every message in hand through an outage on one shared health probe, and says so once', async () => {
  const { log, lines } = captureLogger('pull-worker-test', 'info');
  const js = nc.jetstream();
  const inHand = 5;
  let up = false;
  const failed = new Set<number>();
  const applied = new Set<number>();
  // Each probe stays open until the test answers it.
  const probes: ReturnType<typeof deferred<boolean>>[] = [];
  const worker = createPullWorker({
    name: 'events',
    nc,
    js,
    jsm,
    stream: names.eventsStream,
    durable,
    batchSize: inHand,
    concurrency: inHand,
    maxDeliver: 5,
    backoffMs: [60_000],
    async handle(_data, context) {
      if (!up) {
        failed.add(context.streamSequence);
        throw new Error('database unavailable');
      }
      applied.add(context.streamSequence);
    },
    isPermanent: () => false,
    healthy() {
      const probe = deferred<boolean>();
      probes.push(probe);
      return probe.promise;
    },
    deadLetters: createDeadLetters({ js, names }),
    log,
  });
  for (let n = 0; n < inHand; n++) await js.publish(names.eventSubject('invitee.created'), new Uint8Array([n]));
  await worker.start();
  try {
    await waitFor(() => failed.size === inHand || undefined, { what: 'every message in hand failing' });
    // All of them wait on the one probe under way.
    expect(probes).toHaveLength(1);
    probes[0]!.resolve(false);
    // Held: they poll again, together, on one probe.
    await waitFor(() => probes.length === 2 || undefined, { what: 'the next poll' });
    await new Promise((resolve) => setImmediate(resolve));
    expect(probes).toHaveLength(2);
    up = true;
    probes[1]!.resolve(true);
    await waitFor(() => applied.size === inHand || undefined, { what: 'every message applied' });
    await waitFor(async () => (await worker.lag()).ackPending === 0 || undefined, { what: 'every message acked' });
  } finally {
    // A probe left open would keep its messages held, and stop waits for them.
    for (const probe of probes) probe.resolve(true);
    await worker.stop();
  }
  // Not one retry spent: each message was applied on the delivery that failed.
  expect([...applied].sort()).toEqual([...failed].sort());
  const said = (message: string) => lines.filter((line) => line.includes(`"msg":"${message}"`)).length;
  expect({ pausing: said('pausing: a dependency is unavailable'), resuming: said('resuming') }).toEqual({
    pausing: 1,
    resuming: 1,
  });
});
