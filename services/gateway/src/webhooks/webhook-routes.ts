import Router from '@koa/router';
import type { ParameterizedContext } from 'koa';
import { HttpError, unavailable } from '../http/http-error';
import { readRawBody, requireJsonContentType } from '../http/raw-body';
import type { GatewayState } from '../http/request-context';
import { DeliveryRejected, DependencyUnavailable, type DeliveryIntake, type RejectionKind } from './delivery-intake';

/** The HTTP answer for each kind of refusal; verifyFailureAnswers in @calsync/proto agrees (tested). */
export const statusByKind: Record<RejectionKind, number> = {
  malformed: 400,
  unauthenticated: 401,
  // The signature is genuine but this hook may not carry the payload (another user's event,
  // an event it is not subscribed to): authentication would not help, so 403, never 401.
  forbidden: 403,
  unknown_hook: 404,
};

// Hook ids are random url-safe tokens; anything else cannot name a subscription.
const hookIdPattern = /^[A-Za-z0-9_-]{1,128}$/;

/**
 * Calendly's delivery routes. The body is read here, byte-exact and bounded, never by a body
 * parser: the signature covers the raw bytes. 2xx is answered only once JetStream acknowledged
 * the event (a duplicate acknowledgement included), so a 2xx always means stored.
 */
export function webhookRoutes(options: { intake: DeliveryIntake; maxBodyBytes: number }): Router<GatewayState> {
  const router = new Router<GatewayState>();
  const handle = async (ctx: ParameterizedContext<GatewayState>, hookId: string) => {
    try {
      requireJsonContentType(ctx.get('Content-Type') || undefined);
      if (hookId && !hookIdPattern.test(hookId)) {
        throw new DeliveryRejected(
          'unknown_hook',
          'unknown_hook',
          'no active webhook subscription has this callback URL',
        );
      }
      const rawBody = await readRawBody(ctx.req, options.maxBodyBytes);
      const accepted = await options.intake.accept({
        hookId,
        signatureHeader: ctx.get('Calendly-Webhook-Signature') || undefined,
        rawBody,
        context: { requestId: ctx.state.requestId },
      });
      ctx.state.outcome = accepted.duplicate ? 'duplicate' : 'stored';
      ctx.state.logFields = {
        userId: accepted.userId,
        eventType: accepted.eventType,
        deliveryKey: accepted.deliveryKey,
        sequence: accepted.sequence,
      };
      ctx.status = 200;
      ctx.body = { status: accepted.duplicate ? 'duplicate' : 'stored' };
    } catch (error) {
      if (error instanceof DeliveryRejected) {
        ctx.state.outcome = error.code;
        ctx.state.logFields = { hookId };
        throw new HttpError(statusByKind[error.kind], error.code, error.message);
      }
      if (error instanceof DependencyUnavailable) {
        ctx.state.outcome = `${error.dependency}_unavailable`;
        throw unavailable(`${error.dependency}_unavailable`, 'the delivery cannot be stored now; retry later', error);
      }
      if (error instanceof HttpError) ctx.state.outcome = error.code;
      throw error;
    }
  };
  router.post('/webhooks/calendly/:hookId', (ctx) => handle(ctx, ctx.params.hookId ?? ''));
  router.post('/api/calendly/webhook', (ctx) => handle(ctx, ''));
  return router;
}
