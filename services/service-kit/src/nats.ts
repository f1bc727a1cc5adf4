import {
  connect,
  DeliverPolicy,
  ErrorCode,
  NatsError,
  type ConsumerConfig,
  type JetStreamClient,
  type JetStreamManager,
  type NatsConnection,
  type StreamConfig,
} from 'nats';
import { RequestOne } from 'nats/lib/nats-base-client/request';
import type { Logger } from './logger';

export type { NatsConnection, JetStreamClient, JetStreamManager, JsMsg } from 'nats';

const answered = Symbol('calsync.requestAnswered');
const spared = Symbol('calsync.cancelErrorSpared');

/**
 * nats.js 2.29 answers every request (each JetStream publish's ack among them) and then cancels
 * it, and its cancel() builds a new NatsError, stack trace and all, to reject a promise that is
 * already resolved: the error is thrown away unseen, and building it was 4% of the gateway's CPU
 * per delivery. Here an answered request is cancelled with one error made up front instead (the
 * reject is a no-op all the same); a request cancelled before its answer still gets a fresh
 * error. True once applied; false if nats.js no longer has these methods (then nothing changes).
 */
export function spareAnsweredRequestsTheirCancelError(): boolean {
  const prototype = RequestOne.prototype as RequestOne & { [answered]?: boolean; [spared]?: true };
  if (prototype[spared]) return true;
  const { resolver, cancel } = prototype;
  if (typeof resolver !== 'function' || typeof cancel !== 'function') return false;
  const alreadyAnswered = NatsError.errorForCode(ErrorCode.Cancelled);
  prototype.resolver = function (this: typeof prototype, ...args) {
    this[answered] = true;
    return resolver.apply(this, args);
  };
  prototype.cancel = function (this: typeof prototype, error) {
    return cancel.call(this, error ?? (this[answered] ? alreadyAnswered : undefined));
  };
  prototype[spared] = true;
  return true;
}

/** Connects to NATS and keeps reconnecting for ever, logging each change of state. */
export async function connectNats(options: { url: string; name: string; log: Logger }): Promise<NatsConnection> {
  spareAnsweredRequestsTheirCancelError();
  const nc = await connect({
    servers: options.url.split(','),
    name: options.name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 500,
    reconnectJitter: 250,
    waitOnFirstConnect: false,
    pingInterval: 10_000,
    // Without this, every request and JetStream publish builds two Error objects up front (a
    // stack for where it started, a timeout error in case it times out): about 20 µs of a
    // delivery's CPU at the gateway. Failures still say what failed (code and message).
    noAsyncTraces: true,
  });
  void (async () => {
    for await (const event of nc.status()) {
      if (event.type === 'disconnect' || event.type === 'error')
        options.log.warn({ nats: event.type }, 'nats connection lost');
      else if (event.type === 'reconnect') options.log.info({ nats: event.type }, 'nats reconnected');
    }
  })().catch(() => undefined);
  options.log.info({ server: nc.getServer() }, 'nats connected');
  return nc;
}

/** True while the connection is up (not closed, not reconnecting). */
export function natsIsConnected(nc: NatsConnection): boolean {
  return (
    !nc.isClosed() &&
    !nc.isDraining() &&
    (nc as unknown as { protocol?: { connected?: boolean } }).protocol?.connected !== false
  );
}

/**
 * Declares a stream, or brings an existing one's settings up to date. Idempotent. With
 * `onlyCreate`, an existing stream is left exactly as its owner configured it (for a consumer
 * that must not depend on its publisher starting first).
 */
export async function ensureStream(
  jsm: JetStreamManager,
  config: Partial<StreamConfig> & { name: string; subjects: string[] },
  options: { onlyCreate?: boolean } = {},
): Promise<'created' | 'updated' | 'existed'> {
  try {
    const existing = await jsm.streams.info(config.name);
    if (options.onlyCreate) return 'existed';
    await jsm.streams.update(config.name, { ...existing.config, ...config });
    return 'updated';
  } catch (error) {
    if (!isNotFound(error)) throw error;
    try {
      await jsm.streams.add(config);
      return 'created';
    } catch (addError) {
      // Another replica declared it between our look and our add.
      if (!/already in use|already exists/i.test(String(addError))) throw addError;
      return 'existed';
    }
  }
}

/** Declares a durable consumer, or updates an existing one's settings. Idempotent. */
export async function ensureConsumer(
  jsm: JetStreamManager,
  stream: string,
  config: Partial<ConsumerConfig> & { durable_name: string },
): Promise<void> {
  try {
    await jsm.consumers.info(stream, config.durable_name);
    await jsm.consumers.update(stream, config.durable_name, config);
  } catch (error) {
    if (!isNotFound(error)) throw error;
    await jsm.consumers.add(stream, config);
  }
}

/**
 * Erases every message of `stream` that `matches` (by its subject and data), for messages whose
 * subject does not say whose they are. Reads the stream once through an ordered consumer, then
 * deletes each match with erase (its bytes overwritten on disk, not only unlinked). A missing
 * stream has nothing to erase. Costs one pass over the stream: meant for rare work (forgetting
 * a user), not for a hot path. Resolves the number of messages erased.
 */
export async function eraseMatchingMessages(
  js: JetStreamClient,
  jsm: JetStreamManager,
  stream: string,
  matches: (subject: string, data: Uint8Array) => boolean,
): Promise<number> {
  let stored: number;
  let firstSeq: number;
  try {
    ({ messages: stored, first_seq: firstSeq } = (await jsm.streams.info(stream)).state);
  } catch (error) {
    if (isNotFound(error)) return 0;
    throw error;
  }
  if (stored === 0) return 0;
  // From the first stored sequence: an ordered consumer asked for DeliverPolicy.All never
  // delivers on NATS 2.9 (nats.js 2.29).
  const consumer = await js.consumers.get(stream, {
    deliver_policy: DeliverPolicy.StartSequence,
    opt_start_seq: firstSeq,
  });
  const found: number[] = [];
  // A fetch returns when it has all it asked for (or at its expiry): ask for no more than is stored.
  for (let remaining = stored; remaining > 0;) {
    const asked = Math.min(500, remaining);
    const batch = await consumer.fetch({ max_messages: asked, expires: 2_000 });
    let received = 0;
    let caughtUp = false;
    for await (const message of batch) {
      received += 1;
      if (matches(message.subject, message.data)) found.push(message.seq);
      if (message.info.pending === 0) caughtUp = true;
    }
    remaining -= received;
    // Fewer than asked: messages went meanwhile (aged out, deleted); what is left has been read.
    if (caughtUp || received < asked) break;
  }
  let erased = 0;
  for (const seq of found) {
    try {
      if (await jsm.streams.deleteMessage(stream, seq, true)) erased += 1;
    } catch (error) {
      // Gone meanwhile (aged out, replayed, or erased by a concurrent purge): nothing left to erase.
      if (!/no message found|not found/i.test(String(error))) throw error;
    }
  }
  return erased;
}

function isNotFound(error: unknown): boolean {
  const code = error as { code?: string | number; api_error?: { err_code?: number } } | undefined;
  return (
    code?.api_error?.err_code === 10059 || // stream not found
    code?.api_error?.err_code === 10014 || // consumer not found
    String(code?.code) === '404'
  );
}
