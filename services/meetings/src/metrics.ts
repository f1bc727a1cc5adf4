import { Counter, Gauge, Histogram, latencyBuckets, type Logger, type Registry } from '@calsync/service-kit';
import type { ApplyOutcome } from './meetings/meetings-applier';

export interface MeetingsMetrics {
  observeApply(outcome: ApplyOutcome, eventType: string, seconds: number): void;
  /** A transaction of the applier committed `deliveries` deliveries. */
  observeApplyTransaction(deliveries: number): void;
  deadLettered(consumer: string, cause: 'permanent' | 'exhausted'): void;
  backfill(outcome: 'completed' | 'failed', invitees: number): void;
  /** Reports a consumer's lag (from JetStream's consumer info) whenever Prometheus scrapes. */
  trackLag(consumer: string, lag: () => Promise<{ pending: number; ackPending: number }>): void;
}

export function createMeetingsMetrics(registry: Registry, log: Logger): MeetingsMetrics {
  const counter = (name: string, help: string, labelNames: string[]) =>
    new Counter({ name, help, labelNames, registers: [registry] });
  const applied = counter('meetings_events_applied_total', 'Deliveries applied to meetings, by event type', [
    'event_type',
  ]);
  const duplicates = counter(
    'meetings_events_duplicates_total',
    'Deliveries whose key was already applied (changed nothing), by event type',
    ['event_type'],
  );
  const ignored = counter('meetings_events_ignored_total', 'Deliveries of event types meetings do not use', [
    'event_type',
  ]);
  const deadLettered = counter('meetings_dead_lettered_total', 'Messages given up and sent to the dead-letter stream', [
    'consumer',
    'cause',
  ]);
  const backfills = counter('meetings_backfills_total', 'Backfill requests handled, by outcome', ['outcome']);
  const backfilledInvitees = counter(
    'meetings_backfill_invitees_total',
    'Invitees fetched from Calendly by backfills and applied',
    [],
  );
  const applySeconds = new Histogram({
    name: 'meetings_apply_seconds',
    help: 'Time to apply one delivery (transaction included), by outcome',
    labelNames: ['outcome'],
    buckets: latencyBuckets,
    registers: [registry],
  });
  const transactionDeliveries = new Histogram({
    name: 'meetings_apply_transaction_deliveries',
    help: 'Deliveries each committed apply transaction carried (more than one when deliveries wait for a transaction)',
    buckets: [1, 2, 4, 8, 16, 32, 64],
    registers: [registry],
  });
  const lags = new Map<string, () => Promise<{ pending: number; ackPending: number }>>();
  const collectLag = (field: 'pending' | 'ackPending') =>
    async function (this: Gauge) {
      for (const [consumer, lag] of lags) {
        try {
          this.set({ consumer }, (await lag())[field]);
        } catch (error) {
          log.warn({ err: error, consumer }, 'consumer lag unavailable');
        }
      }
    };
  new Gauge({
    name: 'meetings_consumer_pending_messages',
    help: 'Messages in the stream not yet delivered to the consumer (consumer lag)',
    labelNames: ['consumer'],
    registers: [registry],
    collect: collectLag('pending'),
  });
  new Gauge({
    name: 'meetings_consumer_ack_pending_messages',
    help: 'Messages delivered to the consumer and not yet acknowledged',
    labelNames: ['consumer'],
    registers: [registry],
    collect: collectLag('ackPending'),
  });

  return {
    observeApply(outcome, eventType, seconds) {
      const labels = { event_type: eventType };
      if (outcome === 'applied') applied.inc(labels);
      else if (outcome === 'duplicate') duplicates.inc(labels);
      else ignored.inc(labels);
      applySeconds.observe({ outcome }, seconds);
    },
    observeApplyTransaction: (deliveries) => transactionDeliveries.observe(deliveries),
    deadLettered: (consumer, cause) => deadLettered.inc({ consumer, cause }),
    backfill(outcome, invitees) {
      backfills.inc({ outcome });
      backfilledInvitees.inc(invitees);
    },
    trackLag: (consumer, lag) => void lags.set(consumer, lag),
  };
}
