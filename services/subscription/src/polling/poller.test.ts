import { firstSchedule, nextSlot, phaseOf, type PollSettings } from './poller';

const settings: PollSettings = {
  intervalSeconds: 240,
  freshnessSeconds: 300,
  nearDays: 14,
  sweepIntervalSeconds: 3600,
  sweepPastDays: 7,
  sweepFutureDays: 730,
};

describe('poll schedule', () => {
  it('moves a slot one period on, or past now on the same grid after a pause, never polling the missed slots', () => {
    const slot = new Date('2026-11-30T12:00:00.000Z');
    const period = 240_000;
    expect(nextSlot(slot, period, new Date('2026-11-30T12:00:00.500Z'))).toEqual(new Date('2026-11-30T12:04:00.000Z'));
    // Down for an hour: the next slot is the first one after now, one period's grid kept.
    expect(nextSlot(slot, period, new Date('2026-11-30T13:01:00.000Z'))).toEqual(new Date('2026-11-30T13:04:00.000Z'));
    expect(nextSlot(slot, period, new Date('2026-11-30T12:04:00.000Z'))).toEqual(new Date('2026-11-30T12:08:00.000Z'));
  });

  it('spreads users evenly over the period, each on a phase of its own', () => {
    const period = 240_000;
    const buckets = new Array<number>(8).fill(0);
    for (let user = 0; user < 8000; user++) {
      const phase = phaseOf(`user-${user}`, period);
      expect(phase).toBeGreaterThanOrEqual(0);
      expect(phase).toBeLessThan(period);
      buckets[Math.floor((phase / period) * 8)]! += 1;
    }
    for (const count of buckets) expect(count).toBeGreaterThan(800);
    expect(phaseOf('user-1', period)).toBe(phaseOf('user-1', period));
  });

  it('sweeps a user leaving a webhook at once, and spreads a new one', () => {
    const now = new Date('2026-11-30T12:00:00.000Z');
    expect(firstSchedule(settings, 'u', now, true).nextSweepAt).toEqual(now);
    const fresh = firstSchedule(settings, 'u', now, false);
    expect(fresh.nextSweepAt.getTime() - now.getTime()).toBe(phaseOf('u', 3_600_000));
    expect(fresh.nextPollAt.getTime() - now.getTime()).toBe(phaseOf('u', 240_000));
  });
});
