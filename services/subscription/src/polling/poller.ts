import { createHash } from 'node:crypto';
import { inTransaction, type Logger, type Pool } from '@calsync/service-kit';
import type { BackfillPublisher, BackfillRequest } from '../backfill/backfill-publisher';
import { createSyncModeRepository, type SyncModeRow } from './sync-mode-repository';

const dayMs = 24 * 3600 * 1000;

/** How polled users are polled (README: "Polling"). */
export interface PollSettings {
  /** Each polled user's near window is fetched this often. */
  intervalSeconds: number;
  /** The promise for the near window; a user whose last poll is older is counted as behind. */
  freshnessSeconds: number;
  /** The near window reaches this many days ahead (and one day back, for no-shows). */
  nearDays: number;
  /** Each polled user's whole horizon is fetched this often... */
  sweepIntervalSeconds: number;
  /** ...from this many days back... */
  sweepPastDays: number;
  /** ...to this many days ahead (the horizon the import on connect covers). */
  sweepFutureDays: number;
}

export type PollKind = 'poll' | 'sweep';

/** A short poll also looks this far back: no-shows are marked on meetings that just happened. */
const nearLookbackMs = dayMs;
/** Users claimed per transaction. */
const batchSize = 200;

/** A user's fixed offset inside a period, so polls of many users spread evenly over it. */
export function phaseOf(userId: string, periodMs: number): number {
  return createHash('sha256').update(userId).digest().readUInt32BE(0) % Math.max(1, Math.floor(periodMs));
}

/** The first slot after `now` on the grid `slot + k * period`, keeping the user's phase. */
export function nextSlot(slot: Date, periodMs: number, now: Date): Date {
  const behind = now.getTime() - slot.getTime();
  const steps = behind < 0 ? 1 : Math.floor(behind / periodMs) + 1;
  return new Date(slot.getTime() + steps * periodMs);
}

/** The window a sweep fetches: every meeting a polled user has that may still change. */
export function sweepWindow(settings: PollSettings, now: Date) {
  return {
    windowStart: new Date(now.getTime() - settings.sweepPastDays * dayMs),
    windowEnd: new Date(now.getTime() + settings.sweepFutureDays * dayMs),
  };
}

/** When a user entering polling is first polled and swept: spread over the periods, or sweep now. */
export function firstSchedule(settings: PollSettings, userId: string, now: Date, sweepNow: boolean) {
  const interval = settings.intervalSeconds * 1000;
  const sweep = settings.sweepIntervalSeconds * 1000;
  return {
    nextPollAt: new Date(now.getTime() + phaseOf(userId, interval)),
    nextSweepAt: sweepNow ? now : new Date(now.getTime() + phaseOf(userId, sweep)),
  };
}

export interface Poller {
  /** Requests every due poll now (once; the timer calls it too). Returns how many were requested. */
  pollDue(): Promise<number>;
  /** Polled users whose last poll is older than the freshness promise. */
  countBehind(): Promise<number>;
  start(): void;
  /** Stops the timer and waits for a round in progress. */
  stop(): Promise<void>;
}

/**
 * Polls the Calendly of users who cannot have a webhook, through the same backfill request (and
 * so the same applier and inbox) as imports and gap backfills: a short poll of the near window
 * every interval, and a sweep of the whole horizon every sweep interval, because Calendly's lists
 * filter on a meeting's start time, not on when it changed. Each user keeps a fixed phase in both
 * periods, so requests to Calendly are spread evenly. Due users are claimed with SKIP LOCKED, so
 * replicas share the work and never request the same poll twice; a request id names its slot, so
 * a publish repeated after a crash is deduplicated by JetStream.
 */
export function createPoller(deps: {
  log: Logger;
  pool: Pool;
  backfill: BackfillPublisher;
  settings: PollSettings;
  now?: () => Date;
  onPoll?: (kind: PollKind) => void;
}): Poller {
  const { log, settings } = deps;
  const now = deps.now ?? (() => new Date());
  const intervalMs = settings.intervalSeconds * 1000;
  const sweepMs = settings.sweepIntervalSeconds * 1000;
  // A user is polled at most a tick after their slot: small beside the interval.
  const tickMs = Math.min(1000, Math.max(50, intervalMs / 20));
  let timer: NodeJS.Timeout | undefined;
  let round: Promise<unknown> | undefined;
  let stopping = false;

  const requestFor = (row: SyncModeRow, at: Date): { kind: PollKind; request: BackfillRequest } => {
    const swept = row.nextSweepAt!.getTime() <= at.getTime();
    const base = { userId: row.userId, calendlyUserUri: row.calendlyUserUri };
    if (swept)
      return {
        kind: 'sweep',
        request: {
          ...base,
          kind: 'gap',
          requestId: `sweep:${row.userId}:${row.nextSweepAt!.getTime()}`,
          ...sweepWindow(settings, at),
          reason: 'polling: sweep of the whole horizon',
        },
      };
    return {
      kind: 'poll',
      request: {
        ...base,
        kind: 'gap',
        requestId: `poll:${row.userId}:${row.nextPollAt!.getTime()}`,
        windowStart: new Date(at.getTime() - nearLookbackMs),
        windowEnd: new Date(at.getTime() + settings.nearDays * dayMs),
        reason: 'polling: near window',
      },
    };
  };

  const pollBatch = () =>
    inTransaction(deps.pool, async (client) => {
      const repo = createSyncModeRepository(client);
      const at = now();
      const due = await repo.claimDue(at, batchSize);
      for (const row of due) {
        const { kind, request } = requestFor(row, at);
        await deps.backfill.publish(request);
        // A sweep covers the near window too, so the short poll of this slot is not needed.
        await repo.recordPoll({
          userId: row.userId,
          polledAt: at,
          swept: kind === 'sweep',
          nextPollAt: nextSlot(row.nextPollAt!, intervalMs, at),
          nextSweepAt: kind === 'sweep' ? nextSlot(row.nextSweepAt!, sweepMs, at) : row.nextSweepAt!,
        });
        deps.onPoll?.(kind);
      }
      return due.length;
    });

  const pollDue = async () => {
    let total = 0;
    for (;;) {
      const polled = await pollBatch();
      total += polled;
      if (polled < batchSize || stopping) return total;
    }
  };

  const schedule = () => {
    if (stopping) return;
    timer = setTimeout(() => {
      round = pollDue()
        .catch((error: unknown) => log.warn({ err: error }, 'polling round failed; due users are polled next round'))
        .finally(() => {
          round = undefined;
          schedule();
        });
    }, tickMs);
    timer.unref();
  };

  return {
    pollDue,
    countBehind: () =>
      createSyncModeRepository(deps.pool).countBehind(new Date(now().getTime() - settings.freshnessSeconds * 1000)),
    start: schedule,
    async stop() {
      stopping = true;
      clearTimeout(timer);
      await round;
    },
  };
}
