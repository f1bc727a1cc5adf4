import { SubscriptionServiceService } from '../gen/calsync/subscription/v1/subscription';

/**
 * The span of one VerifyDeliveries item: the gateway's (CLIENT) and subscription's (SERVER) share
 * the name, as the two sides of a unary call share its method. The stream's own call is not
 * traced: it outlives every delivery it carries.
 */
export const verifyDeliveriesItemSpanName = `${SubscriptionServiceService.verifyDeliveries.path.slice(1)} item`;
