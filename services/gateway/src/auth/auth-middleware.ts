import type { Middleware } from 'koa';
import { HttpError, unavailable } from '../http/http-error';
import type { GatewayState } from '../http/request-context';
import { AuthError, bearerToken, type JwtVerifier } from './jwt-verifier';

/** Requires a valid platform JWT and puts its user in ctx.state.principal; 401 (or 503) otherwise. */
export function requireUser(verify: JwtVerifier): Middleware<GatewayState> {
  return async (ctx, next) => {
    try {
      ctx.state.principal = await verify(bearerToken(ctx.get('Authorization') || undefined));
    } catch (error) {
      if (!(error instanceof AuthError)) throw error;
      if (error.kind === 'unavailable') throw unavailable('auth_unavailable', error.message, error);
      const challenge = error.kind === 'missing' ? 'Bearer' : 'Bearer error="invalid_token"';
      throw new HttpError(401, 'unauthorized', error.message, { 'WWW-Authenticate': challenge });
    }
    await next();
  };
}

/** The signed-in user's id; only valid behind requireUser. */
export function userIdOf(state: GatewayState): string {
  if (!state.principal) throw new Error('route is not behind requireUser');
  return state.principal.userId;
}
