import Router from '@koa/router';
import type { createApiGuard } from '../http/api-guard';
import { notFound, permissionDenied } from '../http/errors';
import { organizationResource, userResource, type UserDirectory } from './user-directory';

/** `GET /users/me`, `GET /users/{uuid}`, `GET /organizations/{uuid}`. */
export function userRoutes(deps: {
  baseUrl: string;
  users: UserDirectory;
  guard: ReturnType<typeof createApiGuard>;
}): Router {
  const { baseUrl, users, guard } = deps;
  const router = new Router();

  router.get(
    '/users/me',
    guard('users:read', (ctx, principal) => {
      ctx.body = { resource: userResource(principal.user, baseUrl) };
    }),
  );

  router.get(
    '/users/:uuid',
    guard('users:read', (ctx, principal) => {
      const user = users.get(String(ctx.params.uuid).toLowerCase());
      if (!user) throw notFound();
      if (user.organization !== principal.user.organization) throw permissionDenied();
      ctx.body = { resource: userResource(user, baseUrl) };
    }),
  );

  router.get(
    '/organizations/:uuid',
    guard('users:read', (ctx, principal) => {
      const organization = users.findOrganization(String(ctx.params.uuid));
      if (!organization) throw notFound();
      if (organization !== principal.user.organization) throw permissionDenied();
      const owner = users.membersOf(organization).find((member) => member.role === 'owner');
      ctx.body = { resource: organizationResource(organization, owner) };
    }),
  );

  return router;
}
