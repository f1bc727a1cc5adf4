import type { Logger } from '@calsync/service-kit';
import type { WebhookRepository } from './webhook-repository';

export interface DeliveryRecorder {
  /** Notes that a delivery to the hook verified; written in batches, never on the request path. */
  note(hookId: string, at: Date): void;
  /**
   * Notes that a delivery to this known hook was refused, and why (a VerifyFailure name); held
   * and written like `note`, so a flood of forged deliveries costs one row update per hook per
   * interval.
   */
  noteRefusal(hookId: string, at: Date, reason: string): void;
  /** Writes what was noted so far. */
  flush(): Promise<void>;
  start(): void;
  /** Stops the timer and writes the rest. */
  stop(): Promise<void>;
}

/**
 * The latest value per hook, written as one batch; a failed write is kept for the next round
 * (unless a newer value came meanwhile).
 */
function perHookBatch<V>(
  write: (batch: ReadonlyMap<string, V>) => Promise<void>,
  failed: (error: unknown, hooks: number) => void,
) {
  let pending = new Map<string, V>();
  return {
    note(hookId: string, value: V) {
      pending.set(hookId, value);
    },
    async write() {
      if (pending.size === 0) return;
      const batch = pending;
      pending = new Map();
      try {
        await write(batch);
      } catch (error) {
        failed(error, batch.size);
        for (const [hookId, value] of batch) if (!pending.has(hookId)) pending.set(hookId, value);
      }
    },
  };
}

/**
 * Keeps last_delivery_at (and last_refused_at) without a write per delivery: verification is the
 * hot path and a row update each time would cost more than the verification itself. At most one
 * time per hook is held, and a failed write is kept for the next round.
 */
export function createDeliveryRecorder(options: {
  repository: WebhookRepository;
  log: Logger;
  intervalMs?: number;
}): DeliveryRecorder {
  const { repository, log } = options;
  const deliveries = perHookBatch<Date>(
    (batch) => repository.recordDeliveries(batch),
    (error, hooks) => log.warn({ err: error, hooks }, 'could not record delivery times; will retry'),
  );
  const refusals = perHookBatch<{ at: Date; reason: string }>(
    (batch) => repository.recordRefusals(batch),
    (error, hooks) => log.warn({ err: error, hooks }, 'could not record refused deliveries; will retry'),
  );
  let timer: NodeJS.Timeout | undefined;
  let writing: Promise<void> = Promise.resolve();

  const flush = () => {
    writing = writing.then(async () => {
      await deliveries.write();
      await refusals.write();
    });
    return writing;
  };

  return {
    note(hookId, at) {
      deliveries.note(hookId, at);
    },
    noteRefusal(hookId, at, reason) {
      refusals.note(hookId, { at, reason });
    },
    flush,
    start() {
      timer = setInterval(() => void flush(), options.intervalMs ?? 5_000);
      timer.unref();
    },
    async stop() {
      clearInterval(timer);
      await flush();
    },
  };
}
