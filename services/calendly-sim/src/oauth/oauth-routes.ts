import Router from '@koa/router';
import type { Context } from 'koa';
import { basicCredentials, formOf, queryOf } from '../http/koa-input';
import type { UserDirectory } from '../users/user-directory';
import { consentPage } from './consent-page';
import { allScopes, type AuthorizeRequest, type OAuthServer } from './oauth-server';

const noStore = (ctx: Context) => {
  ctx.set('Cache-Control', 'no-store');
  ctx.set('Pragma', 'no-cache');
};

/** Calendly's auth host routes, and the simulator's consent page behind the authorize step. */
export function oauthRoutes(deps: { oauth: OAuthServer; users: UserDirectory }): Router {
  const { oauth, users } = deps;
  const router = new Router();
  const credentials = (ctx: Context) => ({
    basic: basicCredentials(ctx.get('authorization') || undefined),
    form: formOf(ctx),
  });

  router.get('/oauth/authorize', (ctx) => {
    const query = queryOf(ctx);
    const outcome = oauth.authorize(query as AuthorizeRequest);
    if (outcome.kind === 'redirect') return ctx.redirect(outcome.location);
    ctx.redirect(`/_sim/oauth/consent?${new URLSearchParams(query as Record<string, string>).toString()}`);
  });

  router.get('/_sim/oauth/consent', (ctx) => {
    const query = queryOf(ctx);
    const { sim_user: _user, ...request } = query;
    const outcome = oauth.authorize(request as AuthorizeRequest);
    if (outcome.kind === 'redirect') return ctx.redirect(outcome.location);
    ctx.type = 'html';
    ctx.body = consentPage(request, users.all(), request.scope?.split(/[\s+]+/).filter(Boolean) ?? [...allScopes]);
  });

  router.post('/oauth/token', (ctx) => {
    noStore(ctx);
    ctx.body = oauth.token(credentials(ctx));
  });

  router.post('/oauth/revoke', (ctx) => {
    oauth.revoke(credentials(ctx));
    ctx.body = {};
  });

  router.post('/oauth/introspect', (ctx) => {
    noStore(ctx);
    ctx.body = oauth.introspect(credentials(ctx));
  });

  return router;
}
