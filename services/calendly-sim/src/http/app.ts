import { bodyParser } from '@koa/bodyparser';
import type Router from '@koa/router';
import Koa from 'koa';
import type { Logger } from '@calsync/service-kit';
import type { Faults } from '../faults/faults';
import { rateLimitHeaders } from '../limits/rate-limiter';
import { ApiError, OAuthError, notFound } from './errors';

const faultTitles: Record<number, string> = {
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

/** Calendly's error shapes for every failure, faults on Calendly's routes, then the routers. */
export function createApp(deps: { log: Logger; faults: Faults; routers: Router[] }): Koa {
  const { log, faults } = deps;
  const app = new Koa();
  app.silent = true;

  app.use(async (ctx, next) => {
    try {
      await next();
      if (ctx.status === 404 && ctx.body === undefined) throw notFound();
      if (ctx.status === 405 && ctx.body === undefined) {
        throw new ApiError(405, 'Method Not Allowed', `${ctx.method} is not allowed on ${ctx.path}.`);
      }
    } catch (error) {
      if (error instanceof ApiError) {
        ctx.status = error.status;
        ctx.set(error.headers);
        ctx.body = error.body();
      } else if (error instanceof OAuthError) {
        ctx.status = error.status;
        ctx.body = { error: error.error, error_description: error.description };
      } else if (typeof (error as { status?: unknown }).status === 'number' && (error as { expose?: boolean }).expose) {
        // koa and body parser errors meant for the client: too large, unsupported, malformed.
        const httpError = error as { status: number; message: string };
        ctx.status = httpError.status;
        ctx.body = {
          title: httpError.status === 413 ? 'Payload Too Large' : 'Invalid Argument',
          message: httpError.message,
        };
      } else {
        log.error({ err: error, method: ctx.method, path: ctx.path }, 'request failed');
        ctx.status = 500;
        ctx.body = { title: 'Internal Server Error', message: 'The simulator failed to handle the request.' };
      }
    }
  });

  // The control API is called from pages on other origins (the local demo page, a platform's
  // own test UI); Calendly's routes are not, so only /_sim/ answers cross-origin requests.
  app.use(async (ctx, next) => {
    if (!ctx.path.startsWith('/_sim/') && ctx.path !== '/_sim') return next();
    ctx.set('Access-Control-Allow-Origin', '*');
    if (ctx.method !== 'OPTIONS') return next();
    ctx.set('Access-Control-Allow-Methods', 'GET, POST, DELETE');
    ctx.set('Access-Control-Allow-Headers', 'content-type');
    ctx.set('Access-Control-Max-Age', '600');
    ctx.status = 204;
  });

  app.use(
    bodyParser({
      enableTypes: ['json', 'form'],
      parsedMethods: ['POST', 'PUT', 'PATCH', 'DELETE'],
      jsonLimit: '1mb',
      formLimit: '64kb',
      onError: () => {
        throw new ApiError(400, 'Invalid Argument', 'The request body could not be parsed.');
      },
    }),
  );

  app.use(async (ctx, next) => {
    if (ctx.path.startsWith('/_sim/')) return next();
    const latency = faults.apiLatencyMs();
    if (latency > 0) await new Promise((resolve) => setTimeout(resolve, latency));
    const status = faults.takeApiError(ctx.path, ctx.method);
    if (status !== undefined) {
      const headers: Record<string, string> =
        status === 429
          ? { ...rateLimitHeaders({ allowed: false, limit: 0, remaining: 0, resetSeconds: 60 }), 'Retry-After': '60' }
          : {};
      throw new ApiError(
        status,
        faultTitles[status] ?? 'Error',
        'Injected by the simulator (fault api_errors).',
        undefined,
        headers,
      );
    }
    return next();
  });

  for (const router of deps.routers) app.use(router.routes()).use(router.allowedMethods());
  return app;
}
