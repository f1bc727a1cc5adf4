import type { Logger } from './logger';

/** One step of an ordered shutdown. */
export interface ShutdownStep {
  name: string;
  run(): Promise<void> | void;
}

/**
 * Builds the service's one `stop()`: idempotent (every caller gets the same promise), runs the
 * steps in order, logs a failing step and goes on, and gives up waiting after `timeoutMs`.
 */
export function createStop(options: { log: Logger; timeoutMs: number; steps: ShutdownStep[] }): () => Promise<void> {
  let stopping: Promise<void> | undefined;
  return () => {
    stopping ??= (async () => {
      const { log, timeoutMs, steps } = options;
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), timeoutMs);
        timer.unref();
      });
      const ordered = (async () => {
        for (const step of steps) {
          try {
            await step.run();
          } catch (error) {
            log.error({ err: error, step: step.name }, 'shutdown step failed');
          }
        }
      })();
      const outcome = await Promise.race([ordered.then(() => 'done' as const), timeout]);
      clearTimeout(timer);
      if (outcome === 'timeout') log.warn({ timeoutMs }, 'shutdown timed out; forcing');
      else log.info('stopped');
    })();
    return stopping;
  };
}

/** Calls `stop` on SIGTERM or SIGINT, then exits; a second signal exits at once. */
export function exitOnSignals(stop: () => Promise<void>, log: Logger): void {
  let signalled = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (signalled) process.exit(1);
    signalled = true;
    log.info({ signal }, 'shutting down');
    stop().then(
      () => process.exit(0),
      (error: unknown) => {
        log.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}
