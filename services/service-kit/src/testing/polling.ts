/** How long to poll, how often, and what for (named in the timeout error). */
export interface PollOptions {
  timeoutMs?: number;
  intervalMs?: number;
  what?: string;
}

/** Polls `check` until it stops throwing and returns its value; after the timeout, rethrows its last error. */
export async function eventually<T>(check: () => T | Promise<T>, options: PollOptions = {}): Promise<T> {
  const deadline = Date.now() + (options.timeoutMs ?? 10_000);
  for (;;) {
    try {
      return await check();
    } catch (error) {
      if (Date.now() > deadline) {
        if (options.what && error instanceof Error) error.message = `${options.what}: ${error.message}`;
        throw error;
      }
      await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 50));
    }
  }
}

/** Polls `check` until it returns something other than undefined or false (a throw counts as not yet). */
export function waitFor<T>(
  check: () => T | undefined | false | Promise<T | undefined | false>,
  options: PollOptions = {},
): Promise<T> {
  return eventually(async () => {
    const value = await check();
    if (value === undefined || value === false)
      throw new Error(`timed out waiting for ${options.what ?? 'a condition'}`);
    return value;
  }, options);
}
