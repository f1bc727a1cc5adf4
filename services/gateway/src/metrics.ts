import { Counter, Histogram, latencyBuckets, type Registry } from '@calsync/service-kit';

/** How a verify call ended, as the gateway saw it. */
export type VerifyOutcome = 'verified' | 'rejected' | 'unavailable';
/** How a JetStream publish of a delivery ended. */
export type PublishOutcome = 'stored' | 'duplicate' | 'failed';

/** The gateway's Prometheus series, labelled by route and outcome, never by user. */
export interface GatewayMetrics {
  /** One answered HTTP request: `route` is the matched pattern, never the raw path. */
  observeRequest(request: { route: string; method: string; status: number; outcome: string; seconds: number }): void;
  /** Starts timing one delivery's verify (stream item or unary call); call the result with how it ended. */
  timeVerify(): (outcome: VerifyOutcome) => void;
  /** One VerifyDeliveries message sent: how many deliveries it carried. */
  observeVerifyBatch(items: number): void;
  /** Starts timing a delivery's publish; call the result with how it ended. */
  timePublish(): (outcome: PublishOutcome) => void;
}

export function createGatewayMetrics(registry: Registry): GatewayMetrics {
  const requests = new Counter({
    name: 'http_requests_total',
    help: 'HTTP requests answered, by route, method, status and outcome',
    labelNames: ['route', 'method', 'status', 'outcome'],
    registers: [registry],
  });
  const requestSeconds = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'HTTP request duration until the answer, by route and method',
    labelNames: ['route', 'method'],
    buckets: latencyBuckets,
    registers: [registry],
  });
  const verifySeconds = new Histogram({
    name: 'gateway_verify_duration_seconds',
    help: "A delivery's verify as the gateway sees it (a VerifyDeliveries item or a VerifyAndResolveUser call), by outcome (verified, rejected, unavailable)",
    labelNames: ['outcome'],
    buckets: latencyBuckets,
    registers: [registry],
  });
  const verifyBatchItems = new Histogram({
    name: 'gateway_verify_batch_items',
    help: 'Deliveries per VerifyDeliveries message sent to subscription',
    buckets: [1, 2, 4, 8, 16, 32, 64, 128],
    registers: [registry],
  });
  const publishSeconds = new Histogram({
    name: 'gateway_publish_duration_seconds',
    help: 'JetStream publish of a delivery until acknowledged, by outcome (stored, duplicate, failed)',
    labelNames: ['outcome'],
    buckets: latencyBuckets,
    registers: [registry],
  });
  return {
    observeRequest({ route, method, status, outcome, seconds }) {
      requests.inc({ route, method, status: String(status), outcome });
      requestSeconds.observe({ route, method }, seconds);
    },
    timeVerify() {
      const stop = verifySeconds.startTimer();
      return (outcome) => stop({ outcome });
    },
    observeVerifyBatch(items) {
      verifyBatchItems.observe(items);
    },
    timePublish() {
      const stop = publishSeconds.startTimer();
      return (outcome) => stop({ outcome });
    },
  };
}
