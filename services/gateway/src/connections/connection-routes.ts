import Router from '@koa/router';
import { GrpcStatus } from '@calsync/service-kit';
import { requireUser, userIdOf } from '../auth/auth-middleware';
import type { JwtVerifier } from '../auth/jwt-verifier';
import { z } from 'zod';
import { HttpError, unavailable } from '../http/http-error';
import { parseQueryParameters } from '../http/query-parameters';
import { parseJsonObject, readRawBody, requireJsonContentType } from '../http/raw-body';
import type { GatewayState } from '../http/request-context';
import { upstreamError } from '../upstream/upstream-error';
import type { ConnectCookie } from './connect-cookie';
import { ConnectStepFailed, type CallContext, type ConnectionService } from '../upstream/connection-service';
import { ImportProgressUnknown } from './sync-state';

const maxTokenBodyBytes = 16 * 1024;

/** Why a connection could not be shown: its sync state lacks the import's progress (503, as when meetings is down), or a call failed. */
function describeFailed(error: unknown): HttpError {
  if (error instanceof ImportProgressUnknown)
    return unavailable('service_unavailable', 'meetings cannot answer now; try again shortly', error);
  return upstreamError(error, 'the connection store');
}

// `?purge=true` also forgets everything calsync holds of the user; false (or none) only disconnects.
const disconnectParameters = z.strictObject({
  purge: z.enum(['true', 'false'], { error: 'must be true or false' }).optional(),
});

/**
 * The user's Calendly connection: connect (OAuth redirect or personal token), look, disconnect.
 * Every route but the OAuth callback needs the user's JWT; the callback is bound to its user by
 * the single-use state that identity issued to that user, and to the browser that started the
 * connect by the connect cookie, so an authorize link handed to someone else links nothing.
 */
export function connectionRoutes(options: {
  connections: ConnectionService;
  verify: JwtVerifier;
  appUrl: string;
  connectCookie: ConnectCookie;
}): Router<GatewayState> {
  const { connectCookie } = options;
  const { connections } = options;
  const router = new Router<GatewayState>();
  const signedIn = requireUser(options.verify);
  const context = (state: GatewayState): CallContext => ({
    requestId: state.requestId,
  });

  router.get('/api/calendly/connect', signedIn, async (ctx) => {
    let begun: Awaited<ReturnType<ConnectionService['beginConnect']>>;
    try {
      begun = await connections.beginConnect(userIdOf(ctx.state), context(ctx.state));
    } catch (error) {
      throw upstreamError(error, 'identity');
    }
    const { authorizeUrl } = begun;
    ctx.set('Cache-Control', 'no-store');
    ctx.append('Set-Cookie', connectCookie.issue(begun.state, begun.expiresAt));
    // A single-page app cannot follow a redirect from fetch: it asks for JSON and navigates itself.
    if (ctx.accepts('html', 'json') === 'json') {
      ctx.body = { authorizeUrl };
      return;
    }
    ctx.redirect(authorizeUrl);
  });

  router.get('/api/calendly/oauth/callback', async (ctx) => {
    ctx.set('Cache-Control', 'no-store');
    const backToApp = (params: Record<string, string>) => {
      const url = new URL(options.appUrl);
      for (const [name, value] of Object.entries(params)) url.searchParams.set(name, value);
      ctx.redirect(url.toString());
    };
    const fail = (reason: string, error?: unknown) => {
      ctx.state.outcome = `error_${reason}`;
      // A person declining, or an old or reused link, is an answer; only a failure on our side warns.
      const level = failedOnOurSide.has(reason) ? 'warn' : 'info';
      ctx.state.log[level]({ reason, err: error }, 'calendly connect failed');
      backToApp({ calendly: 'error', reason });
    };
    const { code, state, error } = ctx.query;
    if (error !== undefined) return fail(error === 'access_denied' ? 'access_denied' : 'authorization_failed');
    if (typeof code !== 'string' || typeof state !== 'string' || !code || !state) return fail('invalid_callback');
    // Checked before identity is asked, so a callback from the wrong browser leaves the state
    // unspent for the browser that started the connect, and that browser's cookie in place.
    if (!connectCookie.matches(ctx.cookies.get(connectCookie.name), state)) return fail('browser_mismatch');
    ctx.append('Set-Cookie', connectCookie.clear());
    try {
      const { userId } = await connections.completeConnect(state, code, context(ctx.state));
      ctx.state.outcome = 'connected';
      ctx.state.log.info({ userId }, 'calendly connected');
      backToApp({ calendly: 'connected' });
    } catch (failure) {
      // Connected: only showing the connection failed.
      if (!(failure instanceof ConnectStepFailed)) throw describeFailed(failure);
      fail(callbackReason(failure), failure.cause);
    }
  });

  router.post('/api/calendly/token', signedIn, async (ctx) => {
    requireJsonContentType(ctx.get('Content-Type') || undefined);
    const body = parseJsonObject(await readRawBody(ctx.req, maxTokenBodyBytes));
    const token = typeof body.token === 'string' ? body.token.trim() : '';
    if (!/^[\x21-\x7e]{1,4096}$/.test(token)) {
      throw new HttpError(400, 'invalid_request', '"token" must be a Calendly personal access token');
    }
    try {
      ctx.body = await connections.connectWithToken(userIdOf(ctx.state), token, context(ctx.state));
    } catch (failure) {
      // Connected: only showing the connection failed.
      if (!(failure instanceof ConnectStepFailed)) throw describeFailed(failure);
      const rejected = (message: string) =>
        new HttpError(400, 'token_rejected', `Calendly did not accept the token: ${message}`);
      if (failure.step === 'credentials') {
        throw upstreamError(failure.cause, 'identity', {
          [GrpcStatus.UNAUTHENTICATED]: rejected,
          [GrpcStatus.INVALID_ARGUMENT]: rejected,
          [GrpcStatus.PERMISSION_DENIED]: rejected,
          [GrpcStatus.ALREADY_EXISTS]: (message) => new HttpError(409, 'account_in_use', message),
        });
      }
      // A plan or role that refuses a webhook is no failure: subscription polls the user instead.
      throw upstreamError(failure.cause, 'subscription');
    }
  });

  router.get('/api/calendly/connection', signedIn, async (ctx) => {
    try {
      ctx.body = await connections.describe(userIdOf(ctx.state), context(ctx.state));
    } catch (error) {
      throw describeFailed(error);
    }
  });

  router.delete('/api/calendly/connection', signedIn, async (ctx) => {
    const { purge } = parseQueryParameters(disconnectParameters, ctx.query, ['purge']);
    try {
      await connections.disconnect(userIdOf(ctx.state), context(ctx.state), { purge: purge === 'true' });
    } catch (error) {
      throw upstreamError(error, 'the connection store');
    }
    ctx.status = 204;
  });

  return router;
}

/** The callback reasons that mean something of ours broke, rather than the person or Calendly said no. */
const failedOnOurSide = new Set(['unavailable', 'internal', 'webhook_unavailable', 'webhook_failed']);

/** A short, stable reason for the app's URL (never a message from below). */
function callbackReason(failure: ConnectStepFailed): string {
  const code = (failure.cause as { code?: unknown } | undefined)?.code;
  const unavailable = code === GrpcStatus.UNAVAILABLE || code === GrpcStatus.DEADLINE_EXCEEDED;
  if (failure.step === 'webhook') {
    if (code === GrpcStatus.FAILED_PRECONDITION) return 'webhook_not_allowed';
    return unavailable ? 'webhook_unavailable' : 'webhook_failed';
  }
  switch (code) {
    case GrpcStatus.FAILED_PRECONDITION:
      return 'state_invalid';
    case GrpcStatus.ALREADY_EXISTS:
      return 'account_in_use';
    case GrpcStatus.INVALID_ARGUMENT:
    case GrpcStatus.UNAUTHENTICATED:
    case GrpcStatus.PERMISSION_DENIED:
      return 'code_rejected';
    default:
      return unavailable ? 'unavailable' : 'internal';
  }
}
