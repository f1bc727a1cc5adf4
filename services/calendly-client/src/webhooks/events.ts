/** The events whose payload is an invitee with its scheduled event embedded. */
export const inviteeEvents = [
  'invitee.created',
  'invitee.canceled',
  'invitee_no_show.created',
  'invitee_no_show.deleted',
] as const;
export type InviteeEvent = (typeof inviteeEvents)[number];

/** Calendly's webhook events by the scope they may be subscribed in. */
export const webhookEventsByScope = {
  user: inviteeEvents,
  organization: [...inviteeEvents, 'routing_form_submission.created'],
} as const;
export type WebhookEvent = (typeof webhookEventsByScope)[keyof typeof webhookEventsByScope][number];

/**
 * What calsync subscribes each user's webhook to: everything that changes a user's meetings.
 * Supporting a new Calendly event starts here; reconcile adds it to existing users' hooks.
 */
export const subscribedEvents: readonly WebhookEvent[] = inviteeEvents;

export function isInviteeEvent(event: string): event is InviteeEvent {
  return (inviteeEvents as readonly string[]).includes(event);
}

/** True when a hook subscribed to `events` receives every event calsync subscribes to today. */
export function coversSubscribedEvents(events: Iterable<string>): boolean {
  const have = new Set(events);
  return subscribedEvents.every((event) => have.has(event));
}
