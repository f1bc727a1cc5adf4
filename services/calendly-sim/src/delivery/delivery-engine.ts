import { Agent } from 'undici';
import type { Logger } from '@calsync/service-kit';
import { calendlyTime, type Clock } from '../http/clock';
import type { Faults } from '../faults/faults';
import type { SimulatorSettings } from '../settings/settings';
import type { Subscription, SubscriptionRegistry } from '../webhooks/subscription-registry';
import { calendlySignature } from './signature';

/** One POST to a callback URL (or one that a fault made fail without sending), as the control API lists it. */
export interface DeliveryAttempt {
  id: number;
  /** Attempts of the same webhook message share this id. */
  message: number;
  subscription: string;
  event: string;
  url: string;
  attempt: number;
  outcome: 'delivered' | 'failed';
  status: number | null;
  error: string | null;
  injected: boolean;
  headers: Record<string, string>;
  body: string;
  response_body: string | null;
  started_at: string;
  duration_ms: number;
  /** After a failure: the back-off before the next attempt, or null when this was the last. */
  next_attempt_in_ms: number | null;
}

export interface DeliveryFilter {
  subscription?: string;
  outcome?: string;
  event?: string;
  /** Only attempts with a greater id (for polling). */
  after?: number;
  /** Only the newest this many. */
  limit?: number;
}

/** Sends webhooks as Calendly does: signed, retried with back-off, the subscription disabled when retries run out. */
export interface DeliveryEngine {
  /** Queues one message; resolves when its first attempt has finished (so a caller can order the next). */
  deliver(subscription: Subscription, event: string, body: string, after?: Promise<void>): Promise<void>;
  attempts(filter: DeliveryFilter): DeliveryAttempt[];
  /** Messages not yet delivered nor given up (queued, in flight or waiting for a retry). */
  pending(): number;
  /** Drops every message and the log; attempts already in flight finish unrecorded. */
  clear(): void;
  close(): Promise<void>;
}

interface Message {
  id: number;
  generation: number;
  subscription: Subscription;
  event: string;
  body: string;
  attempts: number;
  firstFailureAt?: number;
}

/** Oldest attempts are forgotten past this many, so a long load test does not exhaust memory. */
const logLimit = 50_000;
const responseExcerptBytes = 1024;
const responseDrainLimitBytes = 1024 * 1024;

export function createDeliveryEngine(deps: {
  settings: SimulatorSettings;
  clock: Clock;
  log: Logger;
  subscriptions: SubscriptionRegistry;
  faults: Faults;
}): DeliveryEngine {
  const { settings, clock, log, subscriptions, faults } = deps;
  let log_: DeliveryAttempt[] = [];
  let attemptSeq = 0;
  let messageSeq = 0;
  let generation = 0;
  let closed = false;
  const live = new Set<Message>();
  const timers = new Set<NodeJS.Timeout>();
  let agentTimeouts = { ...settings.deliveryTimeouts };
  let agent = makeAgent(agentTimeouts);

  function makeAgent(timeouts: { connectMs: number; readMs: number }): Agent {
    return new Agent({
      connect: { timeout: timeouts.connectMs },
      headersTimeout: timeouts.readMs,
      bodyTimeout: timeouts.readMs,
      keepAliveTimeout: 4_000,
      connections: 128,
    });
  }

  /** Timeouts may change at run time (`POST /_sim/settings`): new attempts get an agent built with them. */
  const currentAgent = (): Agent => {
    const wanted = settings.deliveryTimeouts;
    if (wanted.connectMs !== agentTimeouts.connectMs || wanted.readMs !== agentTimeouts.readMs) {
      const old = agent;
      agentTimeouts = { ...wanted };
      agent = makeAgent(agentTimeouts);
      old.close().catch((error: unknown) => log.warn({ err: error }, 'closing the previous delivery agent failed'));
    }
    return agent;
  };

  const record = (attempt: Omit<DeliveryAttempt, 'id'>) => {
    log_.push({ id: (attemptSeq += 1), ...attempt });
    if (log_.length > logLimit) log_ = log_.slice(log_.length - Math.floor(logLimit * 0.9));
  };

  const schedule = (fn: () => void, ms: number) => {
    const timer = setTimeout(() => {
      timers.delete(timer);
      fn();
    }, ms);
    timer.unref();
    timers.add(timer);
  };

  const current = (message: Message) =>
    !closed &&
    message.generation === generation &&
    !message.subscription.deleted &&
    message.subscription.state === 'active';

  const send = async (
    message: Message,
    headers: Record<string, string>,
  ): Promise<{ status: number | null; error: string | null; responseBody: string | null }> => {
    try {
      const response = await currentAgent().request({
        origin: message.subscription.callbackOrigin,
        path: message.subscription.callbackPath,
        method: 'POST',
        headers,
        body: message.body,
      });
      const length = Number(response.headers['content-length']);
      // The common case (a short answer with a length) is read in one go; anything else is streamed and capped.
      if (Number.isFinite(length) && length <= responseExcerptBytes) {
        const text = await response.body.text();
        return { status: response.statusCode, error: null, responseBody: text };
      }
      const chunks: Buffer[] = [];
      let kept = 0;
      let read = 0;
      for await (const chunk of response.body as AsyncIterable<Buffer>) {
        read += chunk.length;
        if (kept < responseExcerptBytes) {
          chunks.push(chunk.subarray(0, responseExcerptBytes - kept));
          kept += Math.min(chunk.length, responseExcerptBytes - kept);
        }
        if (read > responseDrainLimitBytes) {
          response.body.destroy();
          break;
        }
      }
      return { status: response.statusCode, error: null, responseBody: Buffer.concat(chunks).toString('utf8') };
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      return { status: null, error: typeof code === 'string' ? code : (error as Error).message, responseBody: null };
    }
  };

  const attempt = async (message: Message): Promise<void> => {
    if (!current(message)) return finish(message);
    const latency = faults.deliveryLatencyMs();
    if (latency > 0) await new Promise((resolve) => setTimeout(resolve, latency));
    if (!current(message)) return finish(message);

    const { subscription } = message;
    message.attempts += 1;
    const startedAt = clock.now();
    const started = performance.now();
    const headers: Record<string, string> = {
      'content-type': 'application/json; charset=utf-8',
      'user-agent': 'Calendly-Webhooks (calendly-sim)',
    };
    const { key } = subscriptions.signingKeyOf(subscription);
    if (key !== undefined) {
      headers['calendly-webhook-signature'] = calendlySignature(key, Math.floor(startedAt / 1000), message.body);
    }
    const injected = faults.takeDeliveryFailure(subscription.uuid);
    const result =
      injected === 'skip'
        ? { status: null, error: 'injected failure', responseBody: null }
        : await send(message, headers);
    const delivered = !injected && result.status !== null && result.status >= 200 && result.status < 300;
    if (message.generation !== generation) return;

    let nextDelay: number | null = null;
    if (delivered) subscription.retryStartedAt = null;
    else {
      const now = performance.now();
      message.firstFailureAt ??= now;
      subscription.retryStartedAt ??= clock.now();
      const elapsed = now - message.firstFailureAt;
      const { baseMs, factor, windowMs } = settings.retry;
      // The last attempt falls on the window's end; one failing after it disables the subscription.
      if (elapsed < windowMs)
        nextDelay = Math.max(0, Math.min(baseMs * factor ** (message.attempts - 1), windowMs - elapsed));
    }
    record({
      message: message.id,
      subscription: subscription.uri,
      event: message.event,
      url: subscription.callbackUrl,
      attempt: message.attempts,
      outcome: delivered ? 'delivered' : 'failed',
      status: result.status,
      error: injected === 'send' ? 'injected failure after sending' : result.error,
      injected: injected !== undefined,
      headers,
      body: message.body,
      response_body: result.responseBody,
      started_at: calendlyTime(startedAt),
      duration_ms: Math.round((performance.now() - started) * 10) / 10,
      next_attempt_in_ms: nextDelay === null ? null : Math.round(nextDelay),
    });
    log.debug(
      {
        subscription: subscription.uuid,
        event: message.event,
        attempt: message.attempts,
        status: result.status,
        delivered,
      },
      'webhook attempt',
    );
    if (delivered) return finish(message);
    if (nextDelay === null) {
      if (subscription.state === 'active') {
        subscriptions.disable(subscription);
        log.info(
          { subscription: subscription.uuid, attempts: message.attempts },
          'retry window over; subscription disabled',
        );
      }
      return finish(message);
    }
    schedule(() => void attempt(message), nextDelay);
  };

  const finish = (message: Message) => {
    live.delete(message);
  };

  return {
    deliver(subscription, event, body, after) {
      const message: Message = {
        id: (messageSeq += 1),
        generation,
        subscription,
        event,
        body,
        attempts: 0,
      };
      live.add(message);
      const first = (after ?? Promise.resolve()).then(() => attempt(message));
      return first.catch((error: unknown) => {
        log.error({ err: error, subscription: subscription.uuid }, 'webhook attempt crashed');
        finish(message);
      });
    },

    attempts(filter) {
      const matching = log_.filter(
        (entry) =>
          (filter.subscription === undefined ||
            entry.subscription === filter.subscription ||
            entry.subscription.endsWith(`/${filter.subscription}`)) &&
          (filter.outcome === undefined || entry.outcome === filter.outcome) &&
          (filter.event === undefined || entry.event === filter.event) &&
          (filter.after === undefined || entry.id > filter.after),
      );
      return filter.limit === undefined ? matching : matching.slice(-filter.limit);
    },

    pending: () => live.size,

    clear() {
      generation += 1;
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      live.clear();
      log_ = [];
    },

    async close() {
      closed = true;
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      live.clear();
      await agent.destroy();
    },
  };
}
