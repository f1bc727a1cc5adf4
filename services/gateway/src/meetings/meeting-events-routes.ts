import { PassThrough } from 'node:stream';
import Router from '@koa/router';
import { GrpcStatus, hasCode, type PromiseClient } from '@calsync/service-kit';
import { meetingsV1 } from '@calsync/proto';
import type { Context } from 'koa';
import { requireUser, userIdOf } from '../auth/auth-middleware';
import { AuthError, bearerToken, type JwtVerifier } from '../auth/jwt-verifier';
import type { StreamTokens } from '../auth/stream-token';
import { HttpError, unavailable } from '../http/http-error';
import type { GatewayState } from '../http/request-context';
import { callMetadata } from '../upstream/call-metadata';
import { upstreamError } from '../upstream/upstream-error';
import { meetingChangeView } from './meeting-view';

type MeetingsClient = PromiseClient<typeof meetingsV1.MeetingsServiceService>;

const cursorPattern = /^[\x21-\x7e]{1,200}$/;
/** Codes with which meetings refuses a resume cursor; each means: re-list, then follow from now. */
const cursorRefusals = [GrpcStatus.INVALID_ARGUMENT, GrpcStatus.FAILED_PRECONDITION, GrpcStatus.OUT_OF_RANGE];

/**
 * The signed-in user's meeting changes as Server-Sent Events (`GET /api/meetings/events`).
 * Browsers: `POST /api/meetings/events/token` with the JWT, then open
 * `new EventSource('/api/meetings/events?token=...')`; other clients may send the JWT as a bearer
 * header instead. Each event's id is a cursor: EventSource sends it back as Last-Event-ID when it
 * reconnects (a page opening a new EventSource passes it as `lastEventId`), and the stream goes on
 * right after it. A cursor the feed can no longer honour yields a `resync` event (re-list the
 * meetings) and the stream continues from now.
 */
export function meetingEventsRoutes(options: {
  meetings: MeetingsClient;
  verify: JwtVerifier;
  tokens: StreamTokens;
  /** Aborted when the gateway shuts down: open streams end so the drain need not wait for them. */
  closing: AbortSignal;
  heartbeatMs?: number;
}): Router<GatewayState> {
  const router = new Router<GatewayState>();
  const heartbeatMs = options.heartbeatMs ?? 15_000;

  router.post('/api/meetings/events/token', requireUser(options.verify), (ctx) => {
    const { token, expiresAt } = options.tokens.issue(userIdOf(ctx.state));
    ctx.set('Cache-Control', 'no-store');
    ctx.status = 201;
    ctx.body = {
      token,
      expiresAt: expiresAt.toISOString(),
      url: `/api/meetings/events?token=${encodeURIComponent(token)}`,
    };
  });

  router.get('/api/meetings/events', async (ctx) => {
    const userId = await streamUser(ctx, options);
    const resumeFrom = lastEventId(ctx);
    const metadata = callMetadata({ requestId: ctx.state.requestId });
    const cancel = new AbortController();
    const signal = AbortSignal.any([cancel.signal, options.closing]);
    const open = async (from: string) => {
      const watch = options.meetings.watchMeetings({ userId, allUsers: false, resumeFrom: from }, { metadata, signal });
      const responses = watch[Symbol.asyncIterator]();
      // The first response confirms the position: failures before it are still an HTTP answer.
      await responses.next();
      return responses;
    };

    let responses: AsyncIterator<meetingsV1.WatchMeetingsResponse>;
    let resync: string | undefined;
    try {
      try {
        responses = await open(resumeFrom);
      } catch (error) {
        if (!resumeFrom || !cursorRefusals.some((code) => hasCode(error, code))) throw error;
        resync = (error as { details?: string }).details ?? 're-list the meetings';
        responses = await open('');
      }
    } catch (error) {
      cancel.abort();
      throw upstreamError(error, 'meetings');
    }

    const stream = new PassThrough();
    ctx.req.socket.setTimeout(0);
    ctx.req.socket.setNoDelay(true);
    ctx.set({ 'Cache-Control': 'no-store', 'X-Accel-Buffering': 'no', Connection: 'keep-alive' });
    ctx.type = 'text/event-stream; charset=utf-8';
    ctx.status = 200;
    ctx.body = stream;
    ctx.state.outcome = resync ? 'resync' : 'streaming';
    stream.write(`retry: 2000\n: live\n\n`);
    if (resync)
      stream.write(`event: resync\ndata: ${JSON.stringify({ reason: 'cursor_refused', message: resync })}\n\n`);

    const heartbeat = setInterval(() => stream.write(': heartbeat\n\n'), heartbeatMs);
    const finish = () => {
      clearInterval(heartbeat);
      cancel.abort();
      stream.end();
    };
    ctx.req.once('close', finish);
    stream.once('close', finish);
    void (async () => {
      try {
        for (let next = await responses.next(); !next.done; next = await responses.next()) {
          const { change, cursor } = next.value;
          if (!change) continue;
          stream.write(`id: ${cursor}\nevent: meeting.changed\ndata: ${JSON.stringify(meetingChangeView(change))}\n\n`);
        }
      } catch (error) {
        if (!signal.aborted) ctx.state.log.warn({ err: error }, 'meeting events stream ended by meetings');
      } finally {
        finish();
      }
    })();
  });

  return router;
}

/** The user a stream request acts for: a stream token in the URL, or the JWT as a bearer header. */
async function streamUser(
  ctx: Context & { state: GatewayState },
  options: { verify: JwtVerifier; tokens: StreamTokens },
): Promise<string> {
  const token = ctx.query.token;
  try {
    if (token !== undefined) {
      if (typeof token !== 'string') throw new AuthError('invalid', 'give one token');
      return options.tokens.verify(token);
    }
    return (await options.verify(bearerToken(ctx.get('Authorization') || undefined))).userId;
  } catch (error) {
    if (!(error instanceof AuthError)) throw error;
    if (error.kind === 'unavailable') throw unavailable('auth_unavailable', error.message, error);
    throw new HttpError(
      401,
      'unauthorized',
      token === undefined ? error.message : `${error.message}: get a new one with POST /api/meetings/events/token`,
      { 'WWW-Authenticate': 'Bearer' },
    );
  }
}

/** Last-Event-ID from EventSource's reconnect, or `lastEventId` from a page that opened a new EventSource. */
function lastEventId(ctx: Context): string {
  const header = ctx.get('Last-Event-ID');
  const query = ctx.query.lastEventId;
  const value = header || (typeof query === 'string' ? query : '');
  if (Array.isArray(query) || (value && !cursorPattern.test(value)))
    throw new HttpError(400, 'invalid_request', 'Last-Event-ID is not an event id this stream sent');
  return value;
}
