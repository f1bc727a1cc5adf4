import type { Logger } from '@calsync/service-kit';
import cors from '@koa/cors';
import Router from '@koa/router';
import Koa from 'koa';
import mount from 'koa-mount';
import serve from 'koa-static';
import type { GatewayMetrics } from '../metrics';
import { errorHandler, requestContext, type GatewayState } from './request-context';
import type { RequestTracker } from './request-tracker';

/**
 * The gateway's Koa application: request id and access log outermost (the trace span, when tracing is on, wraps it all), then JSON errors,
 * CORS for the configured front-end origins, the routers, and the optional demo folder.
 * No body parser: each route reads its own body (webhooks need the raw bytes).
 */
export function createApp(options: {
  log: Logger;
  metrics: GatewayMetrics;
  tracker: RequestTracker;
  stopping: () => boolean;
  corsOrigins: string[];
  demoDir?: string;
  routers: Router<GatewayState>[];
}): Koa<GatewayState> {
  const app = new Koa<GatewayState>();
  // Koa would print errors it sees to stderr; ours are rendered and logged by errorHandler.
  app.silent = true;
  app.use(requestContext(options));
  app.use(errorHandler());
  const origins = new Set(options.corsOrigins);
  app.use(
    cors({
      origin: (ctx) => (origins.has(ctx.get('Origin')) ? ctx.get('Origin') : ''),
      allowMethods: ['GET', 'POST', 'DELETE', 'OPTIONS'],
      allowHeaders: ['Authorization', 'Content-Type', 'Accept', 'X-Request-Id', 'traceparent', 'tracestate'],
      exposeHeaders: ['X-Request-Id', 'Retry-After', 'WWW-Authenticate'],
      // A single-page app on another origin of the same site fetches /api/calendly/connect with
      // credentials, so the browser keeps the connect cookie (only for the listed origins).
      credentials: true,
      maxAge: 600,
    }),
  );
  // One root router, so 405 answers see every route at once.
  const root = new Router<GatewayState>();
  for (const router of options.routers) root.use(router.routes());
  app.use(root.routes());
  app.use(root.allowedMethods());
  if (options.demoDir) {
    app.use(mount('/demo', serve(options.demoDir, { index: 'index.html' })));
    // Browsers ask the origin for /favicon.ico whatever the page says: answer with the demo's icon.
    const icon = serve(options.demoDir, { index: false });
    app.use((ctx, next) => (ctx.path === '/favicon.ico' ? icon(ctx, next) : next()));
  }
  return app;
}

/** A route a router serves: its method and its Koa path (`/api/meetings/:id`). */
export interface ServedRoute {
  method: string;
  path: string;
}

/** Every method and path `routers` serve (HEAD, which Koa adds to each GET, left out). */
export function servedRoutes(routers: Router<GatewayState>[]): ServedRoute[] {
  return routers.flatMap((router) =>
    router.stack.flatMap((layer) =>
      layer.methods.filter((method) => method !== 'HEAD').map((method) => ({ method, path: String(layer.path) })),
    ),
  );
}
