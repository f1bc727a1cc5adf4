/** calsync's contracts, generated from proto/calsync by buf + ts-proto at build time. */
export * as identityV1 from '../gen/calsync/identity/v1/identity';
export * as identityAdminV1 from '../gen/calsync/identity/v1/identity_admin';
export * as subscriptionV1 from '../gen/calsync/subscription/v1/subscription';
export * as subscriptionAdminV1 from '../gen/calsync/subscription/v1/subscription_admin';
export * as meetingsV1 from '../gen/calsync/meetings/v1/meetings';
export * as meetingsAdminV1 from '../gen/calsync/meetings/v1/meetings_admin';
export * as eventsV1 from '../gen/calsync/events/v1/events';
export { descriptorSetPath } from './descriptor';
export { reusingEncoder } from './encoding';
export { verifyDeliveriesItemSpanName } from './verify-deliveries';
export { verifyFailureAnswerOf, verifyFailureAnswers, type VerifyFailureAnswer } from './verify-failures';
