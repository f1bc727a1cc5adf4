/**
 * Runs tasks one after another per key and tasks of different keys at once: each task starts
 * once the previous task of its key has settled (whether it succeeded or failed), in the order
 * `run` was called.
 */
export interface PerKeyOrder {
  run<T>(key: string, task: () => Promise<T>): Promise<T>;
  /** Keys with a task running or waiting (for tests: it drops to 0 once all have settled). */
  readonly pendingKeys: number;
}

export function createPerKeyOrder(): PerKeyOrder {
  const tails = new Map<string, Promise<void>>();
  return {
    run(key, task) {
      const previous = tails.get(key);
      const result = previous ? previous.then(task) : task();
      const tail = result.then(
        () => undefined,
        () => undefined,
      );
      tails.set(key, tail);
      void tail.then(() => {
        if (tails.get(key) === tail) tails.delete(key);
      });
      return result;
    },
    get pendingKeys() {
      return tails.size;
    },
  };
}
