import type { Clock } from '../http/clock';

/** Where a caller stands in its current window. */
export interface RateDecision {
  allowed: boolean;
  limit: number;
  remaining: number;
  /** Whole seconds until the window resets (never 0 while a window is open). */
  resetSeconds: number;
}

/** Fixed one-minute windows per key, as Calendly's "N requests per user per minute". */
export interface RateLimiter {
  take(key: string, limit: number): RateDecision;
  clear(): void;
}

const windowMs = 60_000;

export function createRateLimiter(clock: Clock): RateLimiter {
  const windows = new Map<string, { startedAt: number; used: number }>();
  return {
    take(key, limit) {
      const now = clock.now();
      let window = windows.get(key);
      // A window whose start lies in the future happens when a test moves the clock back.
      if (!window || now - window.startedAt >= windowMs || now < window.startedAt) {
        window = { startedAt: now, used: 0 };
        windows.set(key, window);
      }
      const resetSeconds = Math.max(1, Math.ceil((window.startedAt + windowMs - now) / 1000));
      if (window.used >= limit) return { allowed: false, limit, remaining: 0, resetSeconds };
      window.used += 1;
      return { allowed: true, limit, remaining: limit - window.used, resetSeconds };
    },
    clear: () => windows.clear(),
  };
}

/** The headers Calendly puts on every API response. */
export function rateLimitHeaders(decision: RateDecision): Record<string, string> {
  return {
    'X-RateLimit-Limit': String(decision.limit),
    'X-RateLimit-Remaining': String(decision.remaining),
    'X-RateLimit-Reset': String(decision.resetSeconds),
  };
}
