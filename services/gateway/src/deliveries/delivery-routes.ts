import Router from '@koa/router';
import { GrpcStatus, type PromiseClient } from '@calsync/service-kit';
import { meetingsV1 } from '@calsync/proto';
import { requireUser, userIdOf } from '../auth/auth-middleware';
import type { JwtVerifier } from '../auth/jwt-verifier';
import { HttpError } from '../http/http-error';
import type { GatewayState } from '../http/request-context';
import { callMetadata } from '../upstream/call-metadata';
import { upstreamError } from '../upstream/upstream-error';
import { deliveriesQuery, deliveryView } from './delivery-view';

type MeetingsClient = PromiseClient<typeof meetingsV1.MeetingsServiceService>;

/** The signed-in user's delivery log, newest first, cursor-paged; only ever that user's. */
export function deliveryRoutes(options: { meetings: MeetingsClient; verify: JwtVerifier }): Router<GatewayState> {
  const router = new Router<GatewayState>();
  const signedIn = requireUser(options.verify);

  router.get('/api/deliveries', signedIn, async (ctx) => {
    const request = deliveriesQuery(userIdOf(ctx.state), ctx.query);
    try {
      const response = await options.meetings.listDeliveries(request, {
        metadata: callMetadata({ requestId: ctx.state.requestId }),
      });
      ctx.body = { deliveries: response.deliveries.map(deliveryView), nextCursor: response.nextCursor || null };
    } catch (error) {
      throw upstreamError(error, 'meetings', {
        [GrpcStatus.INVALID_ARGUMENT]: (message) => new HttpError(400, 'invalid_request', message),
      });
    }
  });

  return router;
}
