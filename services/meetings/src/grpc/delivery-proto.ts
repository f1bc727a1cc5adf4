import { meetingsV1 } from '@calsync/proto';
import type { DeliveryLogEntry, DeliveryOutcome } from '../deliveries/delivery-log';

const outcomes: Record<DeliveryOutcome, meetingsV1.DeliveryOutcome> = {
  applied: meetingsV1.DeliveryOutcome.DELIVERY_OUTCOME_APPLIED,
  duplicate: meetingsV1.DeliveryOutcome.DELIVERY_OUTCOME_DUPLICATE,
  ignored: meetingsV1.DeliveryOutcome.DELIVERY_OUTCOME_IGNORED,
  dead_lettered: meetingsV1.DeliveryOutcome.DELIVERY_OUTCOME_DEAD_LETTERED,
};

/** One delivery log entry as the contract carries it (the user API and the operators' alike). */
export function toDeliveryRecord(entry: DeliveryLogEntry): meetingsV1.DeliveryRecord {
  return {
    deliveryKey: entry.deliveryKey,
    userId: entry.userId,
    eventType: entry.eventType,
    outcome: outcomes[entry.outcome],
    receivedAt: entry.receivedAt,
    recordedAt: entry.recordedAt,
    latencyMs: Math.min(entry.latencyMs, 0xffffffff),
  };
}
