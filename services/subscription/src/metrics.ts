import { Counter, Gauge, Histogram, type Logger, type Registry } from '@calsync/service-kit';
import type { SyncOutcome } from './subscriptions/subscriptions';
import type { VerifyOutcome } from './verify/verifier';
import type { WebhookState } from './webhooks/webhook-repository';
import type { HookFleet } from './fleet/hook-fleet';
import type { PollKind, Poller } from './polling/poller';
import type { CacheLookup, HookCache } from './webhooks/hook-cache';

/** The service's own Prometheus series, on top of the kit's gRPC and process metrics. */
export interface SubscriptionMetrics {
  verification(outcome: VerifyOutcome, hookState: WebhookState | 'none'): void;
  cacheLookup(lookup: CacheLookup): void;
  reconcileResult(outcome: SyncOutcome): void;
  reconcileRun(seconds: number): void;
  reconcileOverrun(): void;
  /** Reports the cache's size and hit ratio at every scrape. */
  watchCache(cache: HookCache): void;
  /** Reports every user's hooks by state and users by sync mode at every scrape (a GROUP BY each; never a user label). */
  watchFleet(fleet: HookFleet): void;
  poll(kind: PollKind): void;
  /** Reports at every scrape how many polled users are behind the freshness promise. */
  watchPoller(poller: Poller): void;
}

export function createSubscriptionMetrics(registry: Registry, log: Logger): SubscriptionMetrics {
  const verifications = new Counter({
    name: 'subscription_verifications_total',
    help: 'Deliveries verified, by outcome (ok or the VerifyFailure name) and the state of the hook they came to (none: no such hook)',
    labelNames: ['outcome', 'hook_state'],
    registers: [registry],
  });
  const lookups = new Counter({
    name: 'subscription_hook_cache_lookups_total',
    help: 'Hook lookups by how they were answered: hit, miss (loaded from Postgres) or bypass (listener down)',
    labelNames: ['result'],
    registers: [registry],
  });
  const reconcileResults = new Counter({
    name: 'subscription_reconcile_results_total',
    help: 'Users reconciled, by outcome',
    labelNames: ['outcome'],
    registers: [registry],
  });
  const reconcileRuns = new Histogram({
    name: 'subscription_reconcile_run_seconds',
    help: 'Duration of a reconcile of every user',
    buckets: [1, 5, 15, 60, 300, 900, 3600],
    registers: [registry],
  });
  const reconcileOverruns = new Counter({
    name: 'subscription_reconcile_overruns_total',
    help: 'Reconcile runs of every user that took longer than RECONCILE_INTERVAL_SECONDS',
    registers: [registry],
  });
  let cache: HookCache | undefined;
  new Gauge({
    name: 'subscription_hook_cache_hit_ratio',
    help: 'Share of hook lookups answered from memory since start',
    registers: [registry],
    collect() {
      if (!cache) return;
      const { hit, miss, bypass } = cache.stats();
      const total = hit + miss + bypass;
      this.set(total === 0 ? 0 : hit / total);
    },
  });
  new Gauge({
    name: 'subscription_hook_cache_entries',
    help: 'Hooks held in memory',
    registers: [registry],
    collect() {
      if (cache) this.set(cache.stats().size);
    },
  });
  let fleet: HookFleet | undefined;
  new Gauge({
    name: 'subscription_webhooks',
    help: 'Webhook subscriptions of every user, by state (pending, active, disabled, missing, removing, failed)',
    labelNames: ['state'],
    registers: [registry],
    async collect() {
      if (!fleet) return;
      // A scrape while Postgres is down shows the other series rather than failing whole.
      const counts = await fleet.count().catch((error: unknown) => {
        log.warn({ err: error }, 'hook count for metrics failed');
        return new Map<string, number>();
      });
      for (const [state, count] of counts) this.set({ state }, count);
    },
  });
  new Gauge({
    name: 'subscription_synced_users',
    help: 'Users with a sync, by how their meetings reach calsync (webhook, or polling: Calendly refused them a webhook)',
    labelNames: ['mode'],
    registers: [registry],
    async collect() {
      if (!fleet) return;
      const counts = await fleet.countSyncModes().catch((error: unknown) => {
        log.warn({ err: error }, 'sync mode count for metrics failed');
        return new Map<string, number>();
      });
      for (const [mode, count] of counts) this.set({ mode }, count);
    },
  });
  const polls = new Counter({
    name: 'subscription_polls_total',
    help: 'Polls of users Calendly refuses a webhook, by kind (poll: near window, sweep: whole horizon)',
    labelNames: ['kind'],
    registers: [registry],
  });
  let poller: Poller | undefined;
  new Gauge({
    name: 'subscription_polled_users_behind',
    help: 'Polled users whose last poll is older than POLL_FRESHNESS_SECONDS',
    registers: [registry],
    async collect() {
      if (!poller) return;
      const behind = await poller.countBehind().catch((error: unknown) => {
        log.warn({ err: error }, 'polled users count for metrics failed');
        return undefined;
      });
      if (behind !== undefined) this.set(behind);
    },
  });
  return {
    poll: (kind) => polls.inc({ kind }),
    watchPoller(watched) {
      poller = watched;
    },
    verification: (outcome, hookState) => verifications.inc({ outcome, hook_state: hookState }),
    cacheLookup: (result) => lookups.inc({ result }),
    reconcileResult: (outcome) => reconcileResults.inc({ outcome }),
    reconcileRun: (seconds) => reconcileRuns.observe(seconds),
    reconcileOverrun: () => reconcileOverruns.inc(),
    watchCache(watched) {
      cache = watched;
    },
    watchFleet(watched) {
      fleet = watched;
    },
  };
}
