export {
  coversSubscribedEvents,
  inviteeEvents,
  isInviteeEvent,
  subscribedEvents,
  webhookEventsByScope,
  type InviteeEvent,
  type WebhookEvent,
} from './events';
export {
  creatorOf,
  deliveryKeyOf,
  parseInviteePayload,
  parseWebhookEnvelope,
  type EnvelopeProblem,
  type EnvelopeResult,
  type InviteePayload,
  type InviteePayloadResult,
  type WebhookCancellation,
  type WebhookEnvelope,
} from './envelope';
