import {
  processTraced,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
  type Logger,
  type NatsConnection,
} from '@calsync/service-kit';
import type { ConsumerMessages } from 'nats';
import type { DeadLetters } from './dead-letters';

export interface MessageContext {
  subject: string;
  /** 1 on the first delivery. */
  deliveryCount: number;
  streamSequence: number;
  /** Tells JetStream the message is still being worked on (for long handlers). */
  working(): void;
  /** Aborted when the worker stops: a long handler may end early; its message is handed back. */
  signal: AbortSignal;
}

export interface PullWorkerOptions {
  /** Names the worker in logs and metrics, e.g. "events". */
  name: string;
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  stream: string;
  durable: string;
  batchSize: number;
  /** Messages handled at once (default 1: one after another). */
  concurrency?: number;
  maxDeliver: number;
  /** Wait before the 2nd, 3rd... delivery of a failing message; the last value repeats. */
  backoffMs: number[];
  /** Resolves when the message's effect is committed; the message is acknowledged only then. */
  handle(data: Uint8Array, context: MessageContext): Promise<void>;
  /** True for an error no retry can fix: the message is dead-lettered at once. */
  isPermanent(error: unknown): boolean;
  /** Asked after a failure that may be ours: false pauses the worker until it answers true. */
  healthy(): Promise<boolean>;
  deadLetters: DeadLetters;
  /** For long handlers: tells JetStream at this interval that the message is still in hand. */
  keepAliveMs?: number;
  log: Logger;
  onDeadLetter?(cause: 'permanent' | 'exhausted'): void;
}

export interface PullWorker {
  start(): Promise<void>;
  /** Finishes the message in hand, hands the buffered ones back to JetStream, and stops. Idempotent. */
  stop(): Promise<void>;
  /** Messages not yet delivered, and delivered but not yet acknowledged. */
  lag(): Promise<{ pending: number; ackPending: number }>;
}

const healthPollMs = 1_000;
const retryConsumeMs = 1_000;

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * A durable JetStream pull consumer: every instance with the same durable name takes its share
 * of the messages. A message is acknowledged only after its handler resolved (after the
 * database commit), retried with back-off when it fails, and dead-lettered when it can never
 * succeed or has used up its deliveries, without holding up the messages behind it.
 */
export function createPullWorker(options: PullWorkerOptions): PullWorker {
  const { log, js, jsm, stream, durable, maxDeliver, backoffMs } = options;
  const workerLog = log.child({ worker: options.name, stream, durable });
  let stopping = false;
  let messages: ConsumerMessages | undefined;
  let running: Promise<void> | undefined;
  let advisories: { unsubscribe(): void } | undefined;
  /** Wakes every sleep now under way (the health polls of the held messages, a retry's wait): for stop. */
  const sleepers = new Set<() => void>();
  let intakePaused = false;
  /** How often a held message is reported in hand: a third of the consumer's ack wait, at most the health poll. */
  let holdKeepAliveMs = healthPollMs;
  const stopped = new AbortController();
  const inFlight = new Set<Promise<void>>();
  const concurrency = Math.max(1, options.concurrency ?? 1);

  const backoffFor = (deliveryCount: number) =>
    backoffMs[Math.min(Math.max(deliveryCount - 1, 0), backoffMs.length - 1)] ?? 1_000;

  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        sleepers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      sleepers.add(wake);
    });

  async function deadLetter(msg: JsMsg, reason: string, cause: 'permanent' | 'exhausted'): Promise<void> {
    try {
      await options.deadLetters.send({
        stream,
        streamSequence: msg.info.streamSequence,
        originalSubject: msg.subject,
        originalData: msg.data,
        reason,
        deliveries: msg.info.deliveryCount,
      });
    } catch (error) {
      workerLog.error({ err: error, seq: msg.info.streamSequence }, 'dead-letter publish failed; will retry');
      msg.nak(backoffFor(msg.info.deliveryCount));
      return;
    }
    msg.term();
    options.onDeadLetter?.(cause);
    workerLog.warn(
      { seq: msg.info.streamSequence, subject: msg.subject, deliveries: msg.info.deliveryCount, reason, cause },
      'message dead-lettered',
    );
  }

  // Each message in hand that fails asks whether our dependencies are up; while one probe is
  // under way the others share its answer: with dozens in hand, an outage would otherwise send
  // dozens of probes a second to a database that is down.
  let probing: Promise<boolean> | undefined;
  const probeHealth = (): Promise<boolean> =>
    (probing ??= options
      .healthy()
      .catch(() => false)
      .finally(() => {
        probing = undefined;
      }));
  /** Messages held until our dependencies are back: the outage is logged once, as it starts and ends. */
  let held = 0;

  /** Keeps a message while our own dependencies are down, so an outage costs it no delivery. */
  async function holdUntilHealthy(msg: JsMsg): Promise<void> {
    if (held++ === 0) workerLog.warn({ seq: msg.info.streamSequence }, 'pausing: a dependency is unavailable');
    // Stop pulling: JetStream only redelivers (and counts deliveries) to pull requests, so
    // messages not yet in hand keep their deliveries for when we are back.
    if (!intakePaused) {
      intakePaused = true;
      messages?.stop();
    }
    // Told it is still in hand well within every ack wait, however long a health check takes:
    // a message whose ack wait ran out would be redelivered, spend a delivery, and could be
    // dead-lettered as exhausted while we hold it (it was, once, with an 800 ms ack wait).
    msg.working();
    const keepAlive = setInterval(() => msg.working(), holdKeepAliveMs);
    try {
      while (!stopping && !(await probeHealth())) await sleep(healthPollMs);
    } finally {
      clearInterval(keepAlive);
      held--;
    }
    if (!stopping && held === 0) workerLog.info('resuming');
  }

  async function process(msg: JsMsg): Promise<void> {
    const { deliveryCount, streamSequence } = msg.info;
    for (;;) {
      const keepAlive = options.keepAliveMs ? setInterval(() => msg.working(), options.keepAliveMs) : undefined;
      try {
        await options.handle(msg.data, {
          subject: msg.subject,
          deliveryCount,
          streamSequence,
          working: () => msg.working(),
          signal: stopped.signal,
        });
        clearInterval(keepAlive);
        msg.ack();
        return;
      } catch (error) {
        clearInterval(keepAlive);
        // Stopped in the middle: not the message's fault, and another instance takes it up.
        if (stopping) return msg.nak();
        if (options.isPermanent(error)) return deadLetter(msg, describe(error), 'permanent');
        if (!(await probeHealth())) {
          await holdUntilHealthy(msg);
          if (stopping) return msg.nak();
          continue;
        }
        if (deliveryCount >= maxDeliver)
          return deadLetter(msg, `failed ${deliveryCount} deliveries; last error: ${describe(error)}`, 'exhausted');
        const delay = backoffFor(deliveryCount);
        workerLog.warn(
          { err: error, seq: streamSequence, deliveryCount, retryInMs: delay },
          'message failed; will retry',
        );
        msg.nak(delay);
        return;
      }
    }
  }

  async function run(): Promise<void> {
    while (!stopping) {
      try {
        const consumer = await js.consumers.get(stream, durable);
        messages = await consumer.consume({ max_messages: options.batchSize });
        if (stopping) messages.stop();
        for await (const msg of messages) {
          // Messages still buffered when we stop go back at once, for another instance to take.
          if (stopping) {
            msg.nak();
            continue;
          }
          const handled = processTraced(
            msg,
            { 'messaging.nats.stream_sequence': msg.info.streamSequence, 'messaging.consumer.group.name': durable },
            () => process(msg),
          )
            .catch((error: unknown) => workerLog.error({ err: error, seq: msg.info.streamSequence }, 'handling failed'))
            .finally(() => inFlight.delete(handled));
          inFlight.add(handled);
          // Up to `concurrency` at once; the next message is taken when one of them is done.
          if (inFlight.size >= concurrency) await Promise.race(inFlight);
        }
        await Promise.all(inFlight);
        if (!stopping && !intakePaused) {
          workerLog.warn('message stream ended; consuming again');
          await sleep(retryConsumeMs);
        }
        intakePaused = false;
      } catch (error) {
        if (stopping) break;
        workerLog.error({ err: error }, 'consuming failed; retrying');
        await sleep(retryConsumeMs);
      }
    }
  }

  // A message whose every delivery timed out (its consumer crashed or hung) never reaches
  // process() with its last delivery; JetStream announces it instead, and one instance
  // (a queue group) dead-letters it from the stream.
  function watchExhausted(): void {
    const subject = `$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${stream}.${durable}`;
    const subscription = options.nc.subscribe(subject, { queue: `${durable}-max-deliveries` });
    advisories = subscription;
    void (async () => {
      for await (const advisory of subscription) {
        try {
          const body = JSON.parse(new TextDecoder().decode(advisory.data)) as {
            stream_seq?: number;
            deliveries?: number;
          };
          if (typeof body.stream_seq !== 'number') continue;
          const stored = await jsm.streams.getMessage(stream, { seq: body.stream_seq });
          await options.deadLetters.send({
            stream,
            streamSequence: body.stream_seq,
            originalSubject: stored.subject,
            originalData: stored.data,
            reason: `delivered ${body.deliveries ?? maxDeliver} times without an acknowledgement (its consumer crashed or timed out each time)`,
            deliveries: body.deliveries ?? maxDeliver,
          });
          options.onDeadLetter?.('exhausted');
          workerLog.warn({ seq: body.stream_seq }, 'unacknowledged message dead-lettered');
        } catch (error) {
          workerLog.error({ err: error }, 'could not dead-letter an exhausted message');
        }
      }
    })();
  }

  return {
    async start() {
      // Fails fast at start-up when the consumer was not declared.
      const { config } = await jsm.consumers.info(stream, durable);
      const ackWaitMs = (config.ack_wait ?? 30_000_000_000) / 1_000_000;
      holdKeepAliveMs = Math.max(50, Math.min(healthPollMs, Math.floor(ackWaitMs / 3)));
      watchExhausted();
      running = run();
      workerLog.info({ batchSize: options.batchSize, maxDeliver }, 'consuming');
    },
    async stop() {
      stopping = true;
      stopped.abort();
      for (const wake of [...sleepers]) wake();
      messages?.stop();
      advisories?.unsubscribe();
      await running;
      await Promise.all(inFlight);
    },
    async lag() {
      const info = await jsm.consumers.info(stream, durable);
      return { pending: info.num_pending, ackPending: info.num_ack_pending };
    },
  };
}
