import { createLogger, type Logger } from './logger';
import { stopTracing } from './tracing';

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

/**
 * Exits once the spans still buffered are exported and the logger has written what it holds
 * (pino buffers when stdout is a pipe), or after a few seconds whatever is left.
 */
function exitAfterFlush(log: Logger, code: number): void {
  const exit = () => process.exit(code);
  setTimeout(exit, 3_000).unref();
  stopTracing()
    .catch((error: unknown) => log.warn({ err: error }, 'could not export the last spans'))
    .finally(() => log.flush(exit));
}

/** Calls `stop` on SIGTERM or SIGINT, then exits; a second signal exits at once. */
export function exitOnSignals(stop: () => Promise<void>, log: Logger): void {
  let signalled = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (signalled) process.exit(1);
    signalled = true;
    log.info({ signal }, 'shutting down');
    stop().then(
      () => exitAfterFlush(log, 0),
      (error: unknown) => {
        log.error({ err: error }, 'shutdown failed');
        exitAfterFlush(log, 1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

/**
 * The body of a service's main.ts when run directly: loads the configuration (a bad one is
 * logged, naming the variables, and exits 1), then either applies the migrations and exits
 * (MIGRATE_ONLY, for a Kubernetes migration Job or init container) or starts the service and
 * stops it on SIGTERM/SIGINT.
 */
export function runService<C extends { LOG_LEVEL: string; MIGRATE_ONLY?: boolean }>(options: {
  service: string;
  loadConfig(): C;
  migrate?(config: NoInfer<C>, log: Logger): Promise<unknown>;
  start(config: NoInfer<C>, options: { log: Logger }): Promise<{ stop(): Promise<void> }>;
}): void {
  let config: C;
  try {
    config = options.loadConfig();
  } catch (error) {
    const bootLog = createLogger({ service: options.service });
    bootLog.fatal({ err: error }, 'configuration invalid');
    return exitAfterFlush(bootLog, 1);
  }
  const log = createLogger({ service: options.service, level: config.LOG_LEVEL });
  const migrateOnly = config.MIGRATE_ONLY && options.migrate;
  const run = migrateOnly
    ? migrateOnly(config, log).then(() => {
        log.info('migrations applied');
        exitAfterFlush(log, 0);
      })
    : options.start(config, { log }).then((app) => {
        // Whoever waits for the service (a test, a bench, an SRE) sees its 'ready' line now.
        log.flush();
        exitOnSignals(app.stop, log);
      });
  run.catch((error: unknown) => {
    log.fatal({ err: error }, migrateOnly ? 'migrations failed' : 'start failed');
    exitAfterFlush(log, 1);
  });
}
