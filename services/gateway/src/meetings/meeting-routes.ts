import Router from '@koa/router';
import { GrpcStatus, type PromiseClient } from '@calsync/service-kit';
import { meetingsV1 } from '@calsync/proto';
import { requireUser, userIdOf } from '../auth/auth-middleware';
import type { JwtVerifier } from '../auth/jwt-verifier';
import { HttpError } from '../http/http-error';
import type { GatewayState } from '../http/request-context';
import { callMetadata } from '../upstream/call-metadata';
import { upstreamError } from '../upstream/upstream-error';
import { listQuery, meetingView } from './meeting-view';

type MeetingsClient = PromiseClient<typeof meetingsV1.MeetingsServiceService>;

/** The signed-in user's meetings, newest first, cursor-paged; every call scoped to that user. */
export function meetingRoutes(options: { meetings: MeetingsClient; verify: JwtVerifier }): Router<GatewayState> {
  const router = new Router<GatewayState>();
  const signedIn = requireUser(options.verify);
  const metadata = (state: GatewayState) => callMetadata({ requestId: state.requestId });

  router.get('/api/meetings', signedIn, async (ctx) => {
    const request = listQuery(userIdOf(ctx.state), ctx.query);
    try {
      const response = await options.meetings.listMeetings(request, { metadata: metadata(ctx.state) });
      ctx.body = { meetings: response.meetings.map(meetingView), nextCursor: response.nextCursor || null };
    } catch (error) {
      throw upstreamError(error, 'meetings', {
        [GrpcStatus.INVALID_ARGUMENT]: (message) => new HttpError(400, 'invalid_request', message),
      });
    }
  });

  router.get('/api/meetings/:id', signedIn, async (ctx) => {
    const id = ctx.params.id ?? '';
    if (!/^[^\s/]{1,200}$/.test(id)) throw new HttpError(404, 'not_found', 'no such meeting');
    try {
      const { meeting } = await options.meetings.getMeeting(
        { userId: userIdOf(ctx.state), id },
        { metadata: metadata(ctx.state) },
      );
      if (!meeting) throw new HttpError(404, 'not_found', 'no such meeting');
      ctx.body = meetingView(meeting);
    } catch (error) {
      throw upstreamError(error, 'meetings', {
        // Another user's meeting and a missing one must look the same.
        [GrpcStatus.NOT_FOUND]: () => new HttpError(404, 'not_found', 'no such meeting'),
        [GrpcStatus.INVALID_ARGUMENT]: () => new HttpError(404, 'not_found', 'no such meeting'),
      });
    }
  });

  return router;
}
