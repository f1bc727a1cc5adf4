import Router from '@koa/router';
import type { createApiGuard } from '../http/api-guard';
import { bodyOf, queryOf } from '../http/koa-input';
import { subscriptionResource, type SubscriptionRegistry } from './subscription-registry';

/** Calendly's `/webhook_subscriptions` routes. */
export function subscriptionRoutes(deps: {
  subscriptions: SubscriptionRegistry;
  guard: ReturnType<typeof createApiGuard>;
}): Router {
  const { subscriptions, guard } = deps;
  const router = new Router();

  router.post(
    '/webhook_subscriptions',
    guard('webhooks:write', (ctx, principal) => {
      ctx.status = 201;
      ctx.body = { resource: subscriptionResource(subscriptions.create(principal, bodyOf(ctx))) };
    }),
  );

  router.get(
    '/webhook_subscriptions',
    guard('webhooks:read', (ctx, principal) => {
      const page = subscriptions.list(principal, queryOf(ctx));
      ctx.body = { collection: page.collection.map(subscriptionResource), pagination: page.pagination };
    }),
  );

  router.get(
    '/webhook_subscriptions/:uuid',
    guard('webhooks:read', (ctx, principal) => {
      ctx.body = {
        resource: subscriptionResource(subscriptions.get(principal, String(ctx.params.uuid).toLowerCase())),
      };
    }),
  );

  router.delete(
    '/webhook_subscriptions/:uuid',
    guard('webhooks:write', (ctx, principal) => {
      subscriptions.remove(principal, String(ctx.params.uuid).toLowerCase());
      ctx.status = 204;
    }),
  );

  return router;
}
