import type { Logger } from '@calsync/service-kit';
import type { WebhookRepository } from './webhook-repository';

export interface DeliveryRecorder {
  /** Notes that a delivery to the hook verified; written in batches, never on the request path. */
  note(hookId: string, at: Date): void;
  /** Writes what was noted so far. */
  flush(): Promise<void>;
  start(): void;
  /** Stops the timer and writes the rest. */
  stop(): Promise<void>;
}

/**
 * Keeps last_delivery_at without a write per delivery: verification is the hot path and a row
 * update each time would cost more than the verification itself. At most one time per hook is
 * held, and a failed write is kept for the next round.
 */
export function createDeliveryRecorder(options: {
  repository: WebhookRepository;
  log: Logger;
  intervalMs?: number;
}): DeliveryRecorder {
  let pending = new Map<string, Date>();
  let timer: NodeJS.Timeout | undefined;
  let writing: Promise<void> = Promise.resolve();

  const flush = () => {
    writing = writing.then(async () => {
      if (pending.size === 0) return;
      const batch = pending;
      pending = new Map();
      try {
        await options.repository.recordDeliveries(batch);
      } catch (error) {
        options.log.warn({ err: error, hooks: batch.size }, 'could not record delivery times; will retry');
        for (const [hookId, at] of batch) if (!pending.has(hookId)) pending.set(hookId, at);
      }
    });
    return writing;
  };

  return {
    note(hookId, at) {
      pending.set(hookId, at);
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
