import Router from '@koa/router';
import { openApiDocument } from './openapi';
import type { GatewayState } from './request-context';

const body = JSON.stringify(openApiDocument);

/** GET /openapi.json: the gateway's HTTP API as OpenAPI 3.1, for generating clients. */
export function openApiRoutes(): Router<GatewayState> {
  const router = new Router<GatewayState>();
  router.get('/openapi.json', (ctx) => {
    ctx.type = 'application/json';
    ctx.set('Cache-Control', 'public, max-age=300');
    ctx.body = body;
  });
  return router;
}
