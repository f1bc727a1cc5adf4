import Router from '@koa/router';
import type { Registry } from '@calsync/service-kit';
import type { GatewayState } from '../http/request-context';
import type { ReadinessReport } from './readiness';

/** Liveness, readiness and Prometheus metrics. */
export function healthRoutes(options: {
  readiness: { check(): Promise<ReadinessReport> };
  registry: Registry;
}): Router<GatewayState> {
  const router = new Router<GatewayState>();
  router.get('/healthz', (ctx) => {
    ctx.body = { status: 'ok' };
  });
  router.get('/readyz', async (ctx) => {
    const report = await options.readiness.check();
    ctx.status = report.ready ? 200 : 503;
    ctx.body = report;
  });
  router.get('/metrics', async (ctx) => {
    ctx.type = options.registry.contentType;
    ctx.body = await options.registry.metrics();
  });
  return router;
}
