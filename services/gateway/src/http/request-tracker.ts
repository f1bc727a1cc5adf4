/** Counts requests being answered, so shutdown can wait for in-flight deliveries. */
export interface RequestTracker {
  enter(): void;
  leave(): void;
  readonly active: number;
  /** Resolves once no request is in flight. */
  idle(): Promise<void>;
}

export function createRequestTracker(): RequestTracker {
  let active = 0;
  let waiters: (() => void)[] = [];
  return {
    enter() {
      active += 1;
    },
    leave() {
      active -= 1;
      if (active === 0) {
        const done = waiters;
        waiters = [];
        for (const resolve of done) resolve();
      }
    },
    get active() {
      return active;
    },
    idle() {
      return active === 0 ? Promise.resolve() : new Promise<void>((resolve) => waiters.push(resolve));
    },
  };
}
