import Router from '@koa/router';
import type { createApiGuard } from '../http/api-guard';
import { queryOf } from '../http/koa-input';
import type { BookingLedger } from './booking-ledger';
import { eventTypeResource } from './resources';

/** Calendly's scheduled event, invitee, no-show and event type reads. */
export function scheduledEventRoutes(deps: {
  baseUrl: string;
  ledger: BookingLedger;
  guard: ReturnType<typeof createApiGuard>;
}): Router {
  const { baseUrl, ledger, guard } = deps;
  const router = new Router();
  const param = (value: unknown) => String(value).toLowerCase();

  router.get(
    '/scheduled_events',
    guard('scheduled_events:read', (ctx, principal) => {
      ctx.body = ledger.listEvents(principal, queryOf(ctx));
    }),
  );

  router.get(
    '/scheduled_events/:uuid',
    guard('scheduled_events:read', (ctx, principal) => {
      ctx.body = { resource: ledger.getEvent(principal, param(ctx.params.uuid)) };
    }),
  );

  router.get(
    '/scheduled_events/:uuid/invitees',
    guard('scheduled_events:read', (ctx, principal) => {
      ctx.body = ledger.listInvitees(principal, param(ctx.params.uuid), queryOf(ctx));
    }),
  );

  router.get(
    '/scheduled_events/:uuid/invitees/:invitee',
    guard('scheduled_events:read', (ctx, principal) => {
      ctx.body = { resource: ledger.getInvitee(principal, param(ctx.params.uuid), param(ctx.params.invitee)) };
    }),
  );

  router.get(
    '/invitee_no_shows/:uuid',
    guard('scheduled_events:read', (ctx, principal) => {
      ctx.body = { resource: ledger.getNoShow(principal, param(ctx.params.uuid)) };
    }),
  );

  router.get(
    '/event_types/:uuid',
    guard('scheduled_events:read', (ctx, principal) => {
      ctx.body = { resource: eventTypeResource(ledger.getEventType(principal, param(ctx.params.uuid)), baseUrl) };
    }),
  );

  return router;
}
