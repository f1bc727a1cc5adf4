import { randomUUID } from 'node:crypto';
import type { Logger } from '@calsync/service-kit';
import type { Middleware } from 'koa';
import type { Principal } from '../auth/jwt-verifier';
import type { GatewayMetrics } from '../metrics';
import { HttpError } from './http-error';
import type { RequestTracker } from './request-tracker';

/** What every request carries through the gateway's middleware. */
export interface GatewayState {
  requestId: string;
  /** The request's logger: every line carries requestId (and trace_id when tracing is on). */
  log: Logger;
  /** Set by handlers that know better than the status (e.g. "duplicate"); a metrics label. */
  outcome?: string;
  /** Added to the request's one access log line (a delivery's user, event and key...). */
  logFields?: Record<string, unknown>;
  principal?: Principal;
}

/**
 * A request's state. Its child logger is made the first time something logs through it: most
 * requests (every stored delivery) write only the access line, which needs no child.
 */
class RequestState implements GatewayState {
  outcome?: string;
  logFields?: Record<string, unknown>;
  principal?: Principal;
  #log: Logger | undefined;

  constructor(
    readonly requestId: string,
    private readonly rootLog: Logger,
  ) {}

  get log(): Logger {
    return (this.#log ??= this.rootLog.child({ requestId: this.requestId }));
  }
}

const requestIdPattern = /^[A-Za-z0-9._:-]{1,128}$/;
const quietRoutes = new Set(['/healthz', '/readyz', '/metrics']);

/**
 * The outermost middleware: gives the request an id (the caller's X-Request-Id when it is
 * sane), a child logger, then counts and times it by
 * route and outcome and writes one access log line (one per request: logging is a real share
 * of a delivery's cost). Asks for the connection to close once
 * the gateway is stopping, so keep-alive clients move to another replica.
 */
export function requestContext(options: {
  log: Logger;
  metrics: GatewayMetrics;
  tracker: RequestTracker;
  stopping: () => boolean;
}): Middleware<GatewayState> {
  return async (ctx, next) => {
    const started = process.hrtime.bigint();
    const incomingId = ctx.get('X-Request-Id');
    const requestId = requestIdPattern.test(incomingId) ? incomingId : randomUUID();
    ctx.state = new RequestState(requestId, options.log);
    ctx.set('X-Request-Id', requestId);
    options.tracker.enter();
    try {
      await next();
    } finally {
      if (options.stopping()) ctx.set('Connection', 'close');
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const route = routeOf(ctx);
      const status = ctx.status;
      const outcome = ctx.state.outcome ?? (status < 400 ? 'ok' : status < 500 ? 'client_error' : 'server_error');
      options.metrics.observeRequest({ route, method: ctx.method, status, outcome, seconds });
      const fields = {
        requestId,
        method: ctx.method,
        route,
        status,
        outcome,
        ms: Math.round(seconds * 1e4) / 10,
        ...ctx.state.logFields,
      };
      // The root logger with requestId as a field: the same line as the request's child logger
      // would write, without making a child (bindings serialised) for every request.
      if (quietRoutes.has(route)) options.log.debug(fields, 'request');
      else options.log.info(fields, 'request');
      options.tracker.leave();
    }
  };
}

/** The matched route pattern (bounded label values), never the raw path. */
function routeOf(ctx: { _matchedRoute?: unknown; path: string }): string {
  const matched = (ctx as { _matchedRoute?: unknown })._matchedRoute;
  if (typeof matched === 'string') return matched;
  if (ctx.path === '/demo' || ctx.path.startsWith('/demo/')) return '/demo';
  return 'unmatched';
}

/**
 * Renders every failure as JSON `{error, message}`: HttpErrors as they are, Koa's own errors
 * (405 from the router) by their status, anything else as 500 without details, logged.
 */
export function errorHandler(): Middleware<GatewayState> {
  return async (ctx, next) => {
    try {
      await next();
      // Statuses set without a body (no route, or the router's 405 with its Allow header) get one too.
      if (ctx.status >= 400 && (ctx.body === undefined || ctx.body === null)) {
        if (ctx.status === 404) throw new HttpError(404, 'not_found', 'no such route');
        throw new HttpError(ctx.status, codeForStatus(ctx.status), ctx.message);
      }
    } catch (error) {
      const answer = toHttpError(error);
      if (answer.status >= 500) {
        const cause = error instanceof HttpError ? error.cause : error;
        const fields = { err: cause ?? error, code: answer.code };
        if (answer.status === 503) ctx.state.log.warn(fields, 'dependency unavailable');
        else ctx.state.log.error(fields, 'request failed');
      }
      ctx.status = answer.status;
      for (const [name, value] of Object.entries(answer.headers)) ctx.set(name, value);
      ctx.body = { error: answer.code, message: answer.message };
    }
  };
}

function toHttpError(error: unknown): HttpError {
  if (error instanceof HttpError) return error;
  const { status, expose, message, headers } = (error ?? {}) as {
    status?: unknown;
    expose?: unknown;
    message?: unknown;
    headers?: Record<string, string>;
  };
  if (typeof status === 'number' && status >= 400 && status < 500 && expose) {
    return new HttpError(
      status,
      codeForStatus(status),
      typeof message === 'string' ? message : 'bad request',
      headers ?? {},
    );
  }
  if (status === 501) return new HttpError(501, codeForStatus(501), 'method not implemented');
  return new HttpError(500, 'internal', 'internal error', {}, error);
}

function codeForStatus(status: number): string {
  const codes: Record<number, string> = {
    404: 'not_found',
    405: 'method_not_allowed',
    413: 'payload_too_large',
    415: 'unsupported_media_type',
    501: 'not_implemented',
  };
  return codes[status] ?? (status < 500 ? 'bad_request' : 'internal');
}
