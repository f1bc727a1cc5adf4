import { Counter, Gauge, type Logger, type Pool, type Registry } from '@calsync/service-kit';
import { connectionKinds, connectionStates, countConnections } from './connections/connection-repository';

/** What the domain reports; Prometheus names stay here. */
export interface IdentityMetrics {
  refreshed(): void;
  /** `reason`: invalid_grant, rate_limited, lock_timeout, or the Calendly failure (e.g. http_503, timeout). */
  refreshFailed(reason: string): void;
}

export function createIdentityMetrics(options: { registry: Registry; pool: Pool; log: Logger }): IdentityMetrics {
  const { registry, pool, log } = options;
  new Gauge({
    name: 'identity_connections',
    help: 'Calendly connections, by kind and state (one GROUP BY at scrape time, so every replica agrees; never a user label)',
    labelNames: ['kind', 'state'],
    registers: [registry],
    async collect() {
      try {
        const counts = await countConnections(pool);
        // Every kind and state, zero included, so a rise from none shows (and alerts) like any other.
        for (const kind of connectionKinds) for (const state of connectionStates) this.set({ kind, state }, 0);
        for (const { kind, state, count } of counts) this.set({ kind, state }, count);
      } catch (error) {
        log.warn({ err: error }, 'connection count for metrics failed');
      }
    },
  });
  const refreshes = new Counter({
    name: 'identity_token_refreshes_total',
    help: 'OAuth access tokens refreshed at Calendly',
    registers: [registry],
  });
  const failures = new Counter({
    name: 'identity_token_refresh_failures_total',
    help: 'OAuth token refreshes that did not produce a token, by reason',
    labelNames: ['reason'],
    registers: [registry],
  });
  return {
    refreshed: () => refreshes.inc(),
    refreshFailed: (reason) => failures.inc({ reason }),
  };
}
