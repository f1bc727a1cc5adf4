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
 * Keeps last_delivery_at (and last_refused_at) without a write per delivery: verification is the
 * hot path and a row update each time would cost more than the verification itself. At most one
 * time per hook is held, and a failed write is kept for the next round.
 */
export function createDeliveryRecorder(options: {
  repository: WebhookRepository;
  log: Logger;
  intervalMs?: number;
}): DeliveryRecorder {
  let pending = new Map<string, Date>();
  let pendingRefusals = new Map<string, { at: Date; reason: string }>();
  let timer: NodeJS.Timeout | undefined;
  let writing: Promise<void> = Promise.resolve();

  const flush = () => {
    writing = writing.then(async () => {
      if (pending.size > 0) {
        const batch = pending;
        pending = new Map();
        try {
          await options.repository.recordDeliveries(batch);
        } catch (error) {
          options.log.warn({ err: error, hooks: batch.size }, 'could not record delivery times; will retry');
          for (const [hookId, at] of batch) if (!pending.has(hookId)) pending.set(hookId, at);
        }
      }
      if (pendingRefusals.size > 0) {
        const batch = pendingRefusals;
        pendingRefusals = new Map();
        try {
          await options.repository.recordRefusals(batch);
        } catch (error) {
          options.log.warn({ err: error, hooks: batch.size }, 'could not record refused deliveries; will retry');
          for (const [hookId, refusal] of batch) if (!pendingRefusals.has(hookId)) pendingRefusals.set(hookId, refusal);
        }
      }
    });
    return writing;
  };

  return {
    note(hookId, at) {
      pending.set(hookId, at);
    },
    noteRefusal(hookId, at, reason) {
      pendingRefusals.set(hookId, { at, reason });
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
