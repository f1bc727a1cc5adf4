import { connectDedicated, tryLockForSession, type Logger, type Pool } from '@calsync/service-kit';
import { invalidInput, SubscriptionError } from '../errors';
import type { ReconcilePage, SyncOutcome, Subscriptions } from '../subscriptions/subscriptions';
import type { CalendlyGrant } from '../upstream/identity-connections';
import { createWebhookRepository } from '../webhooks/webhook-repository';

export interface ReconcileSummary {
  usersChecked: number;
  healthy: number;
  recreated: number;
  orphansDeleted: number;
  failed: number;
  backfillsRequested: number;
  usersDisconnected: number;
  leftoversDeleted: number;
  /** Users Calendly still refuses a webhook: synced by polling. */
  polling: number;
  /** Polled users switched to a webhook, each with a catch-up request. */
  catchUpsRequested: number;
}

export interface Reconciler {
  /** Every user with hooks or leftovers; one run at a time across all replicas (RECONCILE_RUNNING otherwise). */
  reconcileAll(): Promise<ReconcileSummary>;
  reconcileUser(userId: string): Promise<ReconcileSummary>;
  /** Runs reconcileAll an interval after the previous run ended (0: never); runs never overlap. */
  start(): void;
  /** Stops the timer and waits for a run in progress to finish its current users. */
  stop(): Promise<void>;
}

/** The advisory lock that makes one replica at a time walk every user. */
const runLockKey = { namespace: 'subscription.reconcile', name: 'all users' };
/** Users read per page of the work list. */
const pageSize = 500;

const emptySummary = (): ReconcileSummary => ({
  usersChecked: 0,
  healthy: 0,
  recreated: 0,
  orphansDeleted: 0,
  failed: 0,
  backfillsRequested: 0,
  usersDisconnected: 0,
  leftoversDeleted: 0,
  polling: 0,
  catchUpsRequested: 0,
});

/**
 * Walks every user with hooks and has subscriptions repair each one, a bounded number at a
 * time (each worker holds one connection and talks to Calendly with one user's token, so
 * Calendly's per-user rate limits are never shared). Results go to the log and to `onResult`.
 */
export function createReconciler(options: {
  log: Logger;
  pool: Pool;
  databaseUrl: string;
  subscriptions: Subscriptions;
  intervalSeconds: number;
  concurrency: number;
  onResult?: (outcome: SyncOutcome) => void;
  onRun?: (seconds: number) => void;
  /** A run took longer than `intervalSeconds`: each user is checked less often than promised. */
  onOverrun?: () => void;
}): Reconciler {
  const { log } = options;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<ReconcileSummary> | undefined;
  let stopping = false;

  const count = (outcome: SyncOutcome, summary: ReconcileSummary) => {
    summary.usersChecked += 1;
    if (outcome === 'healthy') summary.healthy += 1;
    else if (outcome === 'created' || outcome === 'recreated') summary.recreated += 1;
    else if (outcome === 'disconnected') summary.usersDisconnected += 1;
    else if (outcome === 'failed') summary.failed += 1;
    else if (outcome === 'polling') summary.polling += 1;
    options.onResult?.(outcome);
  };

  const reconcileOne = async (userId: string, summary: ReconcileSummary, grant?: CalendlyGrant | SubscriptionError) => {
    let outcome: SyncOutcome;
    try {
      const result = await options.subscriptions.reconcileUser(userId, grant);
      outcome = result.outcome;
      summary.orphansDeleted += result.orphansDeleted;
      summary.backfillsRequested += result.backfillsRequested;
      summary.leftoversDeleted += result.leftoversDeleted;
      summary.catchUpsRequested += result.catchUpsRequested ?? 0;
      if (result.error) log.warn({ userId, error: result.error.message }, 'reconcile could not repair a user');
    } catch (error) {
      outcome = 'failed';
      log.error({ err: error, userId }, 'reconcile of a user failed');
    }
    count(outcome, summary);
  };

  /**
   * One page of users: the plain healthy ones (one Calendly request each, confirmed together in
   * one write) take the page's quick path; every other user, and any whose hook changed before
   * the confirmation, is repaired one at a time under their lock.
   */
  const reconcilePage = async (users: string[], summary: ReconcileSummary, going: () => boolean) => {
    let page: ReconcilePage | undefined;
    try {
      page = await options.subscriptions.prepareReconcile(users);
    } catch (error) {
      log.warn({ err: error }, 'could not read a page of users at once; reconciling them one by one');
    }
    const healthy: string[] = [];
    let next = 0;
    const worker = async () => {
      while (going() && next < users.length) {
        const userId = users[next++]!;
        let quick = false;
        try {
          quick = (await page?.isHealthy(userId)) ?? false;
        } catch (error) {
          log.warn({ err: error, userId }, 'quick reconcile check failed; repairing under the lock');
        }
        if (quick) healthy.push(userId);
        else await reconcileOne(userId, summary, page?.grantOf(userId));
      }
    };
    await Promise.all(Array.from({ length: Math.min(options.concurrency, users.length) }, worker));
    if (!page || healthy.length === 0) return;
    let changed: Set<string>;
    try {
      changed = new Set(await page.confirm());
    } catch (error) {
      log.warn({ err: error }, 'could not confirm a page of healthy users; reconciling them one by one');
      changed = new Set(healthy);
    }
    for (const userId of healthy) if (!changed.has(userId)) count('healthy', summary);
    for (const userId of changed) await reconcileOne(userId, summary);
  };

  const walk = async (holdsLock: () => boolean): Promise<ReconcileSummary> => {
    const summary = emptySummary();
    const repository = createWebhookRepository(options.pool);
    let after = '';
    while (!stopping && holdsLock()) {
      const users = await repository.listUserIds(after, pageSize);
      if (users.length === 0) break;
      after = users.at(-1)!;
      await reconcilePage(users, summary, () => !stopping && holdsLock());
    }
    return summary;
  };

  const runExclusive = async (): Promise<ReconcileSummary> => {
    // A dedicated connection: the run lock must not take one of the workers' pool connections.
    const client = await connectDedicated({ url: options.databaseUrl, applicationName: 'reconciler', log });
    // Losing the connection loses the lock: another replica may start a run, so this one stops.
    let lockHeld = true;
    client.once('end', () => {
      lockHeld = false;
    });
    try {
      if (!(await tryLockForSession(client, runLockKey)))
        throw new SubscriptionError('RECONCILE_RUNNING', 'another replica is reconciling every user right now');
      const started = process.hrtime.bigint();
      const summary = await walk(() => lockHeld);
      if (!lockHeld)
        throw new SubscriptionError(
          'RECONCILE_LOCK_LOST',
          'the reconcile run lost its lock with its database connection; run it again',
        );
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      options.onRun?.(seconds);
      log.info({ ...summary, seconds: Math.round(seconds * 10) / 10 }, 'reconcile finished');
      // Runs never overlap: the next starts an interval after this one ended, so each user is
      // checked every run plus interval. A run longer than the interval stretches that, on purpose.
      if (options.intervalSeconds > 0 && seconds > options.intervalSeconds) {
        options.onOverrun?.();
        log.warn(
          { seconds: Math.round(seconds), intervalSeconds: options.intervalSeconds },
          'reconcile took longer than its interval: each user is checked less often than the interval says',
        );
      }
      return summary;
    } finally {
      // Ending the session releases the lock.
      await client.end().catch(() => undefined);
    }
  };

  const reconcileAll = () => {
    running ??= runExclusive().finally(() => {
      running = undefined;
    });
    return running;
  };

  const schedule = () => {
    if (stopping || options.intervalSeconds <= 0) return;
    timer = setTimeout(() => {
      reconcileAll()
        .catch((error: unknown) => {
          if (error instanceof SubscriptionError && error.failure === 'RECONCILE_RUNNING')
            log.debug('reconcile skipped: running elsewhere');
          else log.error({ err: error }, 'reconcile run failed');
        })
        .finally(schedule);
    }, options.intervalSeconds * 1000);
    timer.unref();
  };

  return {
    reconcileAll,
    async reconcileUser(userId) {
      if (userId.length > 200) throw invalidInput('user_id is too long');
      const summary = emptySummary();
      await reconcileOne(userId, summary);
      return summary;
    },
    start: schedule,
    async stop() {
      stopping = true;
      clearTimeout(timer);
      await running?.catch(() => undefined);
    },
  };
}
