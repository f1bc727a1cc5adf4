/** The answer of /readyz: ready only when every check passes. */
export interface ReadinessReport {
  ready: boolean;
  checks: { shutdown: 'running' | 'stopping'; nats: 'up' | 'down'; subscription: 'serving' | 'not_serving' };
}

/**
 * Readiness is honest: not ready while stopping, while NATS is disconnected, or while the
 * subscription service's health check does not say SERVING (deliveries would only get 503).
 * Concurrent probes share one health call.
 */
export function createReadiness(deps: {
  stopping: () => boolean;
  natsConnected: () => boolean;
  subscriptionServing: () => Promise<boolean>;
}): { check(): Promise<ReadinessReport> } {
  let pending: Promise<boolean> | undefined;
  const subscriptionServing = () => {
    pending ??= deps.subscriptionServing().finally(() => {
      pending = undefined;
    });
    return pending;
  };
  return {
    async check() {
      const stopping = deps.stopping();
      const nats = deps.natsConnected();
      const subscription = await subscriptionServing();
      return {
        ready: !stopping && nats && subscription,
        checks: {
          shutdown: stopping ? 'stopping' : 'running',
          nats: nats ? 'up' : 'down',
          subscription: subscription ? 'serving' : 'not_serving',
        },
      };
    },
  };
}
