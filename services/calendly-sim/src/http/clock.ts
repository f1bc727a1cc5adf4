/** The simulator's notion of now: real time plus an offset a test may set (fault `clock_offset_ms`). */
export interface Clock {
  now(): number;
  offsetMs: number;
}

export function createClock(): Clock {
  return {
    offsetMs: 0,
    now() {
      return Date.now() + this.offsetMs;
    },
  };
}

/** Calendly writes timestamps with microseconds: `2026-01-02T03:04:05.678000Z`. */
export function calendlyTime(ms: number): string {
  const iso = new Date(ms).toISOString();
  return `${iso.slice(0, -1)}000Z`;
}
