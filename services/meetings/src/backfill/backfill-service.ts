import { setTimeout as sleep } from 'node:timers/promises';
import {
  CalendlyError,
  type CalendlyClient,
  type Invitee,
  type Page,
  type ScheduledEvent,
} from '@calsync/calendly-client';
import type { Logger } from '@calsync/service-kit';
import { MalformedEventError } from '../meetings/calendly-payload';
import type { MeetingsApplier } from '../meetings/meetings-applier';
import type { ImportCheckpoints, ImportKind, ImportRecord, ImportRun } from './import-checkpoints';
import type { ImportLock, ImportLocks } from './import-locks';
import type { RateBudget } from './rate-budget';

/** A backfill that cannot succeed however often it is retried (no connection, bad window). */
export class BackfillRejectedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BackfillRejectedError';
  }
}

/** The instance is shutting down: the import stopped at a checkpoint and another delivery continues it. */
export class ImportInterruptedError extends Error {
  constructor() {
    super('the import was interrupted by shutdown; it continues from its checkpoint');
    this.name = 'ImportInterruptedError';
  }
}

/**
 * The run lost its import lock with the lock's database connection, or found another run had
 * begun the import since (its checkpoint write changed nothing): it stops, and the import goes on
 * from its checkpoint in the run that owns it or on the request's next delivery.
 */
export class ImportLockLostError extends Error {
  constructor() {
    super('the import lost its lock or was taken over by another run; it continues from its checkpoint');
    this.name = 'ImportLockLostError';
  }
}

export interface BackfillRequest {
  requestId: string;
  userId: string;
  /** The Calendly user the request was made for; the connection's current user is used when empty. */
  calendlyUserUri: string;
  windowStart?: Date;
  windowEnd?: Date;
  reason: string;
  /** The initial import on connect (its progress is the connection's sync state), or a gap. */
  kind: ImportKind;
}

/** A valid Calendly access token for a platform user (from identity). */
export interface TokenSource {
  /** Throws BackfillRejectedError when the user has no usable connection. */
  accessToken(userId: string): Promise<{ accessToken: string; calendlyUserUri: string }>;
}

/** What one run did (a resumed run counts only its own work). */
export interface BackfillResult {
  events: number;
  invitees: number;
  applied: number;
  duplicates: number;
  skipped: number;
  calendlyRequests: number;
  /** True when it continued an earlier run's checkpoint. */
  resumed: boolean;
}

export interface RunContext {
  /** Tells the message's consumer the work is still going. */
  working(): void;
  /** Aborted when the instance shuts down: the run stops at a checkpoint. */
  signal?: AbortSignal;
  /**
   * True when this failure ends the request (no delivery will try it again): the import is
   * recorded as failed rather than retrying. False when not given.
   */
  endsRequest?(error: unknown): boolean;
}

export interface Backfill {
  /**
   * Fetches the user's scheduled events starting in the window, with every invitee, and applies
   * each invitee as a synthetic invitee.created / invitee.canceled delivery through the same
   * applier as webhook deliveries. Checkpointed after every scheduled event: run again with the
   * same request id, it continues after the last finished event (a completed one does nothing).
   * Safe to run again: each synthetic delivery has its own key. One run of a request at a time,
   * across instances: a second delivery of a request that is running waits for that run (and
   * then usually finds it completed). A run that fails records it on the import for the sync
   * state (`retrying`, or `failed` when context.endsRequest says so) while it still owns it.
   */
  run(request: BackfillRequest, context?: RunContext): Promise<BackfillResult>;
}

const pageSize = 100;
const maxWindowMs = 5 * 366 * 24 * 3_600_000;
// 429s in a row for one call before the run fails (and its message is retried later).
const maxRefusals = 10;
// How often a request another run holds is tried again.
const lockPollMs = 1_000;

export function createBackfill(deps: {
  log: Logger;
  tokens: TokenSource;
  calendly: CalendlyClient;
  applier: MeetingsApplier;
  checkpoints: ImportCheckpoints;
  locks: ImportLocks;
  budget: RateBudget;
  now?: () => Date;
  observe?: (outcome: 'completed' | 'failed', invitees: number) => void;
}): Backfill {
  const { log, calendly, applier, checkpoints, budget } = deps;
  const now = deps.now ?? (() => new Date());

  /** Waits until no other run of the request goes on, here or in another instance. */
  async function holdImport(request: BackfillRequest, context: RunContext): Promise<ImportLock> {
    let announced = false;
    for (;;) {
      if (context.signal?.aborted) throw new ImportInterruptedError();
      const lock = await deps.locks.take(request.requestId);
      if (lock) return lock;
      if (!announced) {
        announced = true;
        log.info(
          { requestId: request.requestId, userId: request.userId },
          'this import is running already; waiting for it',
        );
      }
      context.working();
      try {
        await sleep(lockPollMs, undefined, { signal: context.signal });
      } catch {
        throw new ImportInterruptedError();
      }
    }
  }

  return {
    async run(request, context = { working: () => undefined }) {
      const { windowStart, windowEnd } = request;
      if (!request.requestId) throw new BackfillRejectedError('request_id is required');
      if (!request.userId) throw new BackfillRejectedError('user_id is required');
      if (!windowStart || !windowEnd) throw new BackfillRejectedError('window_start and window_end are required');
      if (windowStart.getTime() >= windowEnd.getTime())
        throw new BackfillRejectedError('window_start must be before window_end');
      if (windowEnd.getTime() - windowStart.getTime() > maxWindowMs)
        throw new BackfillRejectedError('the window is longer than 5 years');

      const lock = await holdImport(request, context);
      try {
        return await runHolding(request, { windowStart, windowEnd }, context, lock);
      } finally {
        await lock.release();
      }
    },
  };

  async function runHolding(
    request: BackfillRequest,
    { windowStart, windowEnd }: { windowStart: Date; windowEnd: Date },
    context: RunContext,
    lock: ImportLock,
  ): Promise<BackfillResult> {
    const { record, resumed } = await checkpoints.begin({
      requestId: request.requestId,
      userId: request.userId,
      kind: request.kind,
      windowStart,
      windowEnd,
    });
    const result: BackfillResult = {
      events: 0,
      invitees: 0,
      applied: 0,
      duplicates: 0,
      skipped: 0,
      calendlyRequests: 0,
      resumed,
    };
    const fields = { requestId: request.requestId, userId: request.userId, kind: request.kind };
    if (record.status === 'completed') {
      log.info(fields, 'backfill already completed');
      return result;
    }
    if (resumed) log.info({ ...fields, events: record.events, invitees: record.invitees }, 'backfill resumed');
    const run: ImportRun = { requestId: request.requestId, runId: record.runId! };
    try {
      await fill(request, record, run, result, context, lock.lost);
    } catch (error) {
      // Stopped by shutdown or taken over: not a failure of the import, which goes on elsewhere.
      if (error instanceof ImportInterruptedError || error instanceof ImportLockLostError) throw error;
      deps.observe?.('failed', result.invitees);
      // Recorded while this run still holds the import, and only if no other run has begun it.
      const status = context.endsRequest?.(error) ? 'failed' : 'retrying';
      await checkpoints
        .failed(run, status, error instanceof Error ? error.message : String(error))
        .catch((recordError: unknown) =>
          log.warn({ ...fields, err: recordError }, "could not record the import's failure"),
        );
      throw error;
    }
    deps.observe?.('completed', result.invitees);
    log.info({ ...fields, reason: request.reason, ...result }, 'backfill done');
    return result;
  }

  async function fill(
    request: BackfillRequest,
    checkpoint: ImportRecord,
    run: ImportRun,
    result: BackfillResult,
    context: RunContext,
    lockLost: AbortSignal,
  ): Promise<void> {
    const { requestId, userId } = request;
    const token = await deps.tokens.accessToken(userId);
    const calendlyUser = token.calendlyUserUri || request.calendlyUserUri;
    if (request.calendlyUserUri && token.calendlyUserUri && request.calendlyUserUri !== token.calendlyUserUri)
      log.warn(
        { requestId, userId },
        'backfill asked for another Calendly user than the current connection; using the connection',
      );
    // Taken before reading, so a webhook created after this read always counts as newer.
    const fetchedAt = now().toISOString();

    let unrecorded = 0;
    /** Requests made since the last checkpoint write, handed to it. */
    const takeRequests = () => {
      const count = unrecorded;
      unrecorded = 0;
      return count;
    };
    const stopIfClosing = () => {
      if (context.signal?.aborted) throw new ImportInterruptedError();
      if (lockLost.aborted) throw new ImportLockLostError();
    };
    const stopping = context.signal ? AbortSignal.any([context.signal, lockLost]) : lockLost;
    /** A checkpoint write of this run; another run owns the import when it changed nothing. */
    const ownCheckpoint = async (written: Promise<boolean>) => {
      if (!(await written)) throw new ImportLockLostError();
    };

    async function waitForBudget(): Promise<void> {
      for (let until = budget.pausedUntil(userId); until; until = budget.pausedUntil(userId)) {
        log.info({ requestId, userId, until: until.toISOString() }, 'import paused for the Calendly rate limit');
        await ownCheckpoint(checkpoints.paused(run, until));
        try {
          await sleep(Math.max(0, until.getTime() - Date.now()), undefined, { signal: stopping });
        } catch (error) {
          stopIfClosing();
          throw error;
        }
        await ownCheckpoint(checkpoints.paused(run, null));
      }
    }

    /** One Calendly call within the user's budget; a 429 waits for the window and tries again. */
    async function call<T>(fetchPage: () => Promise<Page<T>>): Promise<Page<T>> {
      for (let refusals = 0; ;) {
        stopIfClosing();
        await waitForBudget();
        unrecorded++;
        result.calendlyRequests++;
        try {
          const page = await fetchPage();
          budget.answered(userId, page.rateLimit);
          return page;
        } catch (error) {
          if (!(error instanceof CalendlyError) || error.status !== 429 || ++refusals > maxRefusals) throw error;
          budget.refused(userId, error.retryAfterSeconds);
        }
      }
    }

    const applyInvitee = async (event: ScheduledEvent, invitee: Invitee, done: Tally) => {
      const eventType = invitee.status === 'canceled' ? 'invitee.canceled' : 'invitee.created';
      const body = {
        event: eventType,
        created_at: fetchedAt,
        created_by: calendlyUser,
        payload: { ...invitee, scheduled_event: event },
      };
      done.invitees++;
      try {
        const outcome = await applier.apply({
          deliveryKey: `backfill:${requestId}:${invitee.uri}`,
          userId,
          eventType,
          payload: Buffer.from(JSON.stringify(body)),
        });
        if (outcome === 'duplicate') done.duplicates++;
        else done.applied++;
      } catch (error) {
        // One invitee Calendly describes oddly must not keep the rest of the window from arriving.
        if (!(error instanceof MalformedEventError)) throw error;
        done.skipped++;
        log.warn({ requestId, invitee: invitee.uri, err: error }, 'backfilled invitee skipped');
      }
    };

    const listEvents = (pageToken: string | undefined) =>
      call(() =>
        calendly.listScheduledEvents(token.accessToken, {
          user: calendlyUser,
          minStartTime: request.windowStart!.toISOString(),
          maxStartTime: request.windowEnd!.toISOString(),
          sort: 'start_time:asc',
          count: pageSize,
          pageToken,
        }),
      );

    let pageToken = checkpoint.pageToken ?? undefined;
    let skipThrough = checkpoint.lastEventUri;
    for (;;) {
      let page: Page<ScheduledEvent>;
      try {
        page = await listEvents(pageToken);
      } catch (error) {
        // Calendly's page tokens are opaque and may not last: start the window again instead.
        const stale =
          pageToken !== undefined &&
          pageToken === checkpoint.pageToken &&
          error instanceof CalendlyError &&
          (error.status === 400 || error.status === 404);
        if (!stale) throw error;
        log.warn({ requestId, userId }, 'checkpoint page token refused; restarting the window');
        pageToken = undefined;
        skipThrough = null;
        await ownCheckpoint(checkpoints.pageStarted(run, null, takeRequests()));
        continue;
      }
      context.working();
      let events = page.collection;
      if (skipThrough) {
        const at = events.findIndex((event) => event.uri === skipThrough);
        if (at >= 0) events = events.slice(at + 1);
        skipThrough = null;
      }
      for (const event of events) {
        stopIfClosing();
        const done: Tally = { invitees: 0, applied: 0, duplicates: 0, skipped: 0 };
        let inviteeToken: string | undefined;
        do {
          const invitees = await call(() =>
            calendly.listEventInvitees(token.accessToken, event.uri, { count: pageSize, pageToken: inviteeToken }),
          );
          context.working();
          for (const invitee of invitees.collection) await applyInvitee(event, invitee, done);
          inviteeToken = invitees.pagination.next_page_token ?? undefined;
        } while (inviteeToken);
        await ownCheckpoint(
          checkpoints.eventDone(run, {
            pageToken: pageToken ?? null,
            eventUri: event.uri,
            ...done,
            calendlyRequests: takeRequests(),
          }),
        );
        result.events++;
        result.invitees += done.invitees;
        result.applied += done.applied;
        result.duplicates += done.duplicates;
        result.skipped += done.skipped;
      }
      const next = page.pagination.next_page_token;
      if (!next) break;
      pageToken = next;
      await ownCheckpoint(checkpoints.pageStarted(run, pageToken, takeRequests()));
    }
    await ownCheckpoint(checkpoints.completed(run, takeRequests()));
  }
}

interface Tally {
  invitees: number;
  applied: number;
  duplicates: number;
  skipped: number;
}
