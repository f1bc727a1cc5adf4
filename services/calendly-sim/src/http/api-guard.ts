import type { Context } from 'koa';
import type { ApiUsage } from '../limits/api-usage';
import type { RateLimiter } from '../limits/rate-limiter';
import { rateLimitHeaders } from '../limits/rate-limiter';
import type { OAuthServer, Principal, Scope } from '../oauth/oauth-server';
import type { SimulatorSettings } from '../settings/settings';
import { ApiError, permissionDenied } from './errors';
import { bearerToken } from './koa-input';

export type ApiHandler = (ctx: Context, principal: Principal) => void | Promise<void>;

/**
 * Wraps an API route as Calendly serves it: bearer token (401), the per-user per-minute limit
 * with X-RateLimit-* on every answer (429), then the OAuth scope the route needs (403).
 */
export function createApiGuard(deps: {
  oauth: OAuthServer;
  limiter: RateLimiter;
  usage: ApiUsage;
  settings: SimulatorSettings;
}) {
  return (scope: Scope, handler: ApiHandler) => async (ctx: Context) => {
    const principal = deps.oauth.authenticate(bearerToken(ctx.get('authorization') || undefined));
    const paid = deps.settings.apiRequestsPerUserPerMinute;
    const limit = principal.user.plan === 'free' ? Math.max(1, Math.floor(paid / 10)) : paid;
    const decision = deps.limiter.take(`api:${principal.user.uuid}`, limit);
    deps.usage.record(principal.user.uuid, decision.allowed);
    ctx.set(rateLimitHeaders(decision));
    if (!decision.allowed) {
      throw new ApiError(
        429,
        'Too Many Requests',
        `You have exceeded ${limit} requests per minute; retry after ${decision.resetSeconds} s.`,
        undefined,
        { 'Retry-After': String(decision.resetSeconds) },
      );
    }
    if (!principal.scopes.has(scope)) throw permissionDenied(`The access token lacks the ${scope} scope.`);
    await handler(ctx, principal);
  };
}
