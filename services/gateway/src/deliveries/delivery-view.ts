import { meetingsV1 } from '@calsync/proto';
import { z } from 'zod';
import { cursorParameter, limitParameter, parseQueryParameters } from '../http/query-parameters';

const iso = (date: Date | undefined) => (date ? date.toISOString() : null);

const outcomes: Partial<Record<meetingsV1.DeliveryOutcome, string>> = {
  [meetingsV1.DeliveryOutcome.DELIVERY_OUTCOME_APPLIED]: 'applied',
  [meetingsV1.DeliveryOutcome.DELIVERY_OUTCOME_DUPLICATE]: 'duplicate',
  [meetingsV1.DeliveryOutcome.DELIVERY_OUTCOME_IGNORED]: 'ignored',
  [meetingsV1.DeliveryOutcome.DELIVERY_OUTCOME_DEAD_LETTERED]: 'dead_lettered',
};

/** One received delivery as the user API shows it: when, what, what became of it; never its body. */
export function deliveryView(delivery: meetingsV1.DeliveryRecord) {
  return {
    deliveryKey: delivery.deliveryKey,
    eventType: delivery.eventType,
    outcome: outcomes[delivery.outcome] ?? 'unknown',
    receivedAt: iso(delivery.receivedAt),
    recordedAt: iso(delivery.recordedAt),
    latencyMs: delivery.latencyMs,
  };
}

const listParameters = z.strictObject({ limit: limitParameter(100), cursor: cursorParameter });

/** The ListDeliveries request of `?limit&cursor` for the given user; 400 naming a bad parameter. */
export function deliveriesQuery(
  userId: string,
  query: Record<string, string | string[] | undefined>,
): meetingsV1.ListDeliveriesRequest {
  const { limit, cursor } = parseQueryParameters(listParameters, query, ['limit', 'cursor']);
  return { userId, pageSize: limit ?? 0, cursor: cursor ?? '' };
}
