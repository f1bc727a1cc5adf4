export {
  inviteeCreatedBody,
  inviteeResource,
  scheduledEventResource,
  webhookEnvelope,
  type Host,
  type InviteeFields,
  type ScheduledEventFields,
} from './webhook-payloads';
