import { createStop, type ShutdownStep } from './lifecycle';
import type { Logger } from './logger';

/** What a service's start has opened so far, each with how to close it. */
export interface Opened {
  /** Registers how to close what was just opened: it is closed before everything opened earlier. */
  closeWith(name: string, run: ShutdownStep['run']): void;
}

/**
 * Runs a service's start. Each resource is registered as soon as it is acquired; if a later
 * step fails, everything opened so far is closed, newest first, and the error is rethrown. On
 * success the same steps become the service's one idempotent `stop()`.
 */
export async function startService<T extends object>(
  options: { log: Logger; shutdownTimeoutMs: number },
  start: (opened: Opened) => Promise<T>,
): Promise<T & { stop(): Promise<void> }> {
  const steps: ShutdownStep[] = [];
  const stop = createStop({ log: options.log, timeoutMs: options.shutdownTimeoutMs, steps });
  try {
    const app = await start({ closeWith: (name, run) => void steps.unshift({ name, run }) });
    return { ...app, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
