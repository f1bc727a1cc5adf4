/** What one simulated user's API calls came to: every call Calendly counted, and those refused with 429. */
export interface ApiUsageOfUser {
  requests: number;
  rate_limited: number;
}

/**
 * Counts API calls per user, so a test or bench can say how many requests a piece of work
 * cost (Calendly bills its rate limit per user).
 */
export interface ApiUsage {
  record(userUuid: string, allowed: boolean): void;
  of(userUuid: string): ApiUsageOfUser;
  /** Every user's calls together, and how many users made any (for a bench's request rate). */
  total(): ApiUsageOfUser & { users: number };
  clear(): void;
}

export function createApiUsage(): ApiUsage {
  const byUser = new Map<string, ApiUsageOfUser>();
  const all = { requests: 0, rate_limited: 0 };
  return {
    record(userUuid, allowed) {
      const usage = byUser.get(userUuid) ?? { requests: 0, rate_limited: 0 };
      usage.requests += 1;
      all.requests += 1;
      if (!allowed) {
        usage.rate_limited += 1;
        all.rate_limited += 1;
      }
      byUser.set(userUuid, usage);
    },
    of: (userUuid) => ({ ...(byUser.get(userUuid) ?? { requests: 0, rate_limited: 0 }) }),
    total: () => ({ ...all, users: byUser.size }),
    clear: () => {
      byUser.clear();
      all.requests = 0;
      all.rate_limited = 0;
    },
  };
}
