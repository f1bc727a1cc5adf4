import { Counter, Gauge, Histogram, type Registry } from '@calsync/service-kit';
import type { SyncOutcome } from './subscriptions/subscriptions';
import type { VerifyOutcome } from './verify/verifier';
import type { CacheLookup, HookCache } from './webhooks/hook-cache';

/** The service's own Prometheus series, on top of the kit's gRPC and process metrics. */
export interface SubscriptionMetrics {
  verification(outcome: VerifyOutcome): void;
  cacheLookup(lookup: CacheLookup): void;
  reconcileResult(outcome: SyncOutcome): void;
  reconcileRun(seconds: number): void;
  /** Reports the cache's size and hit ratio at every scrape. */
  watchCache(cache: HookCache): void;
}

export function createSubscriptionMetrics(registry: Registry): SubscriptionMetrics {
  const verifications = new Counter({
    name: 'subscription_verifications_total',
    help: 'Deliveries verified, by outcome (ok or the VerifyFailure name)',
    labelNames: ['outcome'],
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
  return {
    verification: (outcome) => verifications.inc({ outcome }),
    cacheLookup: (result) => lookups.inc({ result }),
    reconcileResult: (outcome) => reconcileResults.inc({ outcome }),
    reconcileRun: (seconds) => reconcileRuns.observe(seconds),
    watchCache(watched) {
      cache = watched;
    },
  };
}
