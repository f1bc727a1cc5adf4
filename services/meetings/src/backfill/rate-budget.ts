import type { RateLimitState } from '@calsync/calendly-client';

/**
 * Paces Calendly calls per user from what Calendly says about each user's per-minute budget
 * (`X-RateLimit-*` on every answer, `Retry-After` on a 429). Imports stop short of the limit,
 * keeping `reservePercent` of every window for the rest of calsync's calls for that user (its
 * webhook, reconcile, polling), and wait for the window's reset.
 */
export interface RateBudget {
  /** When the user's calls may go on, or undefined when they may go on now. */
  pausedUntil(userId: string): Date | undefined;
  /** Takes in where the user's budget stands after an answer. */
  answered(userId: string, state: RateLimitState | undefined): void;
  /** Calendly refused a call with 429: nothing more for this user until its window resets. */
  refused(userId: string, retryAfterSeconds: number | undefined): void;
}

// Calendly's windows are one minute; a 429 without a readable reset waits for a whole one.
const defaultWaitSeconds = 60;
// A little past the reset, so the first call lands in the new window.
const marginMs = 250;

export function createRateBudget(options: { reservePercent: number; now?: () => number }): RateBudget {
  const now = options.now ?? Date.now;
  const pauses = new Map<string, number>();
  const pauseFor = (userId: string, seconds: number) => {
    const until = now() + seconds * 1000 + marginMs;
    pauses.set(userId, Math.max(until, pauses.get(userId) ?? 0));
  };
  return {
    pausedUntil(userId) {
      const until = pauses.get(userId);
      if (until === undefined) return undefined;
      if (until <= now()) {
        pauses.delete(userId);
        return undefined;
      }
      return new Date(until);
    },
    answered(userId, state) {
      if (!state || state.limit <= 0) return;
      const reserve = Math.ceil((state.limit * options.reservePercent) / 100);
      if (state.remaining <= reserve) pauseFor(userId, state.resetSeconds);
    },
    refused(userId, retryAfterSeconds) {
      pauseFor(userId, retryAfterSeconds ?? defaultWaitSeconds);
    },
  };
}
