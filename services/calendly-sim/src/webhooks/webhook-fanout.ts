import { calendlyTime, type Clock } from '../http/clock';
import type { Notify } from '../bookings/booking-ledger';
import type { DeliveryEngine } from '../delivery/delivery-engine';
import type { SubscriptionRegistry } from './subscription-registry';

/**
 * Turns a booking change into one webhook per interested subscription. The envelope is built by
 * concatenation around a payload serialised once, because `created_by` is the only part that
 * differs between subscriptions and fan-out speed bounds the simulator's delivery rate.
 */
export function createWebhookFanout(deps: {
  clock: Clock;
  subscriptions: SubscriptionRegistry;
  delivery: DeliveryEngine;
}): Notify {
  return (host, messages) => {
    const createdAt = JSON.stringify(calendlyTime(deps.clock.now()));
    const rendered = messages.map((message) => ({
      event: message.event,
      head: `{"event":${JSON.stringify(message.event)},"created_at":${createdAt},"created_by":`,
      tail: `,"payload":${JSON.stringify(message.payload)}}`,
    }));
    for (const subscription of deps.subscriptions.recipients(host)) {
      const createdBy = JSON.stringify(subscription.creator.uri);
      let previous: Promise<void> | undefined;
      for (const message of rendered) {
        if (!subscription.events.includes(message.event)) continue;
        previous = deps.delivery.deliver(
          subscription,
          message.event,
          `${message.head}${createdBy}${message.tail}`,
          previous,
        );
      }
    }
  };
}
