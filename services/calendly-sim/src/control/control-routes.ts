import { setTimeout as delay } from 'node:timers/promises';
import Router from '@koa/router';
import { z } from 'zod';
import type { BookingLedger } from '../bookings/booking-ledger';
import type { DeliveryEngine } from '../delivery/delivery-engine';
import type { OAuthServer } from '../oauth/oauth-server';
import { faultsSchema, type Faults } from '../faults/faults';
import type { Clock } from '../http/clock';
import type { ApiUsage } from '../limits/api-usage';
import { ApiError, invalidArgument, notFound, type ErrorDetail } from '../http/errors';
import { bodyOf, queryOf } from '../http/koa-input';
import { parseInput } from '../http/validation';
import {
  mergeSettings,
  publicSettings,
  replaceSettings,
  settingsPatchSchema,
  type SimulatorSettings,
} from '../settings/settings';
import type { SimUser, UserDirectory } from '../users/user-directory';
import { subscriptionResource, type Subscription, type SubscriptionRegistry } from '../webhooks/subscription-registry';

const newUserSchema = z
  .object({
    name: z.string().min(1).max(200),
    email: z.email(),
    organization: z.string().min(1).max(500).optional(),
    plan: z.enum(['free', 'standard']).optional(),
    role: z.enum(['owner', 'admin', 'user']).optional(),
    timezone: z.string().min(1).optional(),
  })
  .strict();

/** What an account change may set: the plan (upgrade, downgrade) and the role in the organization. */
const userChangeSchema = z
  .object({
    plan: z.enum(['free', 'standard']).optional(),
    role: z.enum(['owner', 'admin', 'user']).optional(),
  })
  .strict()
  .refine((value) => value.plan !== undefined || value.role !== undefined, 'give plan or role');

/** How far ahead a paced run may start, and how many bookings one request may pace. */
const pacedLeadMs = 10 * 60_000;
const pacedMaxBookings = 1_000;

const pacedBookingsSchema = z
  .object({
    per_second: z.number().positive().max(10_000),
    start_at: z.iso.datetime({ offset: true }).optional(),
    // Each one is checked as POST /_sim/bookings checks it, when its turn comes.
    bookings: z.array(z.unknown()).min(1).max(pacedMaxBookings),
  })
  .strict();

/** One paced booking's outcome: what it booked (by URI), or the error its own request would have had. */
type PacedBooking =
  | { scheduled_event: string; invitee: string }
  | { error: { status: number; title: string; message: string; details?: ErrorDetail[] } };

const controlUser = (user: SimUser) => ({
  uri: user.uri,
  uuid: user.uuid,
  name: user.name,
  email: user.email,
  timezone: user.timezone,
  organization: user.organization.uri,
  role: user.role,
  plan: user.plan,
  personal_access_token: user.personalAccessToken,
});

const controlSubscription = (subscription: Subscription, keySource: string) => ({
  ...subscriptionResource(subscription),
  uuid: subscription.uuid,
  created_with: subscription.createdWith,
  signing_key_source: keySource,
});

/** The simulator's own API under /_sim/: the world's state, bookings, faults and settings (README: control API). */
export function controlRoutes(deps: {
  users: UserDirectory;
  subscriptions: SubscriptionRegistry;
  ledger: BookingLedger;
  delivery: DeliveryEngine;
  faults: Faults;
  clock: Clock;
  settings: SimulatorSettings;
  oauth: OAuthServer;
  apiUsage: ApiUsage;
  reset(): void;
}): Router {
  const { users, subscriptions, ledger, delivery, faults, clock, settings } = deps;
  const router = new Router({ prefix: '/_sim' });

  const keySource = (subscription: Subscription) => subscriptions.signingKeyOf(subscription).source;

  router.post('/users', (ctx) => {
    ctx.status = 201;
    ctx.body = controlUser(users.create(parseInput(newUserSchema, bodyOf(ctx))));
  });

  router.get('/users', (ctx) => {
    ctx.body = { collection: users.all().map(controlUser) };
  });

  // An upgrade or downgrade takes effect on the next API call (webhook creation, rate limit);
  // subscriptions that exist stay as they are, since Calendly documents nothing else.
  router.patch('/users/:user', (ctx) => {
    const user = users.find(String(ctx.params.user));
    if (!user) throw notFound();
    const change = parseInput(userChangeSchema, bodyOf(ctx));
    if (change.plan !== undefined) user.plan = change.plan;
    if (change.role !== undefined) user.role = change.role;
    ctx.body = controlUser(user);
  });

  // The user removes the application in their Calendly account (Integrations): its tokens stop
  // working, and the next refresh is refused with invalid_grant.
  router.post('/users/:user/revoke_access', (ctx) => {
    const user = users.find(String(ctx.params.user));
    if (!user) throw notFound();
    ctx.body = { revoked_grants: deps.oauth.revokeUserGrants(user.uuid) };
  });

  router.post('/bookings', (ctx) => {
    ctx.status = 201;
    ctx.body = ledger.book(bodyOf(ctx));
  });

  // A load generator inside the simulator: the bookings are made at a steady pace from start_at,
  // without a control request each, so a bench measuring calsync does not spend its machine's CPU
  // on one HTTP request per booking to Calendly's stand-in (each cost the simulator and its
  // client about 0.9 and 0.8 ms of CPU). Answers once the last one is booked; one that cannot be
  // booked gets the error POST /_sim/bookings would have answered, and the rest go on.
  router.post('/bookings/paced', async (ctx) => {
    const input = parseInput(pacedBookingsSchema, bodyOf(ctx));
    const startAt = input.start_at === undefined ? Date.now() : Date.parse(input.start_at);
    if (startAt > Date.now() + pacedLeadMs)
      throw invalidArgument([{ parameter: 'start_at', message: 'must be at most 10 minutes from now' }]);
    const collection: PacedBooking[] = [];
    for (const [index, booking] of input.bookings.entries()) {
      const due = startAt + (index * 1000) / input.per_second;
      // A timer runs on the monotonic clock and may fire a millisecond before Date.now() reaches
      // its due time: wait again until the wall clock has, so no booking is made early.
      for (let wait = due - Date.now(); wait > 0; wait = due - Date.now()) await delay(wait);
      try {
        const booked = ledger.book(booking);
        collection.push({ scheduled_event: booked.scheduled_event.uri, invitee: booked.invitee.uri });
      } catch (error) {
        if (!(error instanceof ApiError)) throw error;
        collection.push({ error: { status: error.status, ...error.body() } });
      }
    }
    ctx.body = { collection };
  });

  router.post('/invitees/cancel', (ctx) => {
    ctx.body = ledger.cancel(bodyOf(ctx));
  });

  router.post('/invitees/reschedule', (ctx) => {
    ctx.status = 201;
    ctx.body = ledger.reschedule(bodyOf(ctx));
  });

  router.post('/invitees/no_show', (ctx) => {
    ctx.status = 201;
    ctx.body = ledger.markNoShow(bodyOf(ctx));
  });

  router.delete('/invitees/no_show', (ctx) => {
    ctx.body = ledger.unmarkNoShow(bodyOf(ctx));
  });

  router.get('/webhook_subscriptions', (ctx) => {
    const query = queryOf(ctx);
    const user = query.user !== undefined ? users.find(query.user) : undefined;
    if (query.user !== undefined && !user)
      throw invalidArgument([{ parameter: 'user', message: 'names no simulated user' }]);
    ctx.body = {
      collection: subscriptions
        .all()
        .filter(
          (subscription) =>
            (user === undefined || subscription.user === user) &&
            (query.state === undefined || subscription.state === query.state),
        )
        .map((subscription) => controlSubscription(subscription, keySource(subscription))),
    };
  });

  router.post('/webhook_subscriptions/:uuid/disable', (ctx) => {
    const subscription = subscriptions.find(String(ctx.params.uuid));
    if (!subscription) throw notFound();
    subscriptions.disable(subscription);
    ctx.body = controlSubscription(subscription, keySource(subscription));
  });

  const deliveriesQuery = z
    .object({
      subscription: z.string().min(1).optional(),
      outcome: z.enum(['delivered', 'failed']).optional(),
      event: z.string().min(1).optional(),
      after: z.coerce.number().int().min(0).optional(),
      limit: z.coerce.number().int().min(1).optional(),
    })
    .strict();

  router.get('/deliveries', (ctx) => {
    ctx.body = {
      collection: delivery.attempts(parseInput(deliveriesQuery, queryOf(ctx))),
      pending: delivery.pending(),
    };
  });

  router.get('/faults', (ctx) => {
    ctx.body = { ...faults.describe(), clock_offset_ms: clock.offsetMs };
  });

  router.post('/faults', (ctx) => {
    const input = parseInput(faultsSchema, bodyOf(ctx));
    if (input.fail_deliveries !== undefined) {
      const entries = Array.isArray(input.fail_deliveries) ? input.fail_deliveries : [input.fail_deliveries];
      const resolved = entries.map((entry, index) => {
        const subscription = subscriptions.find(entry.subscription);
        if (!subscription) {
          throw invalidArgument([
            { parameter: `fail_deliveries.${index}.subscription`, message: 'names no subscription' },
          ]);
        }
        return { subscriptionUuid: subscription.uuid, count: entry.count, mode: entry.mode };
      });
      faults.failDeliveries(resolved);
    }
    if (input.api_errors !== undefined) faults.setApiErrors(input.api_errors);
    if (input.latency !== undefined) faults.setLatency(input.latency);
    if (input.clock_offset_ms !== undefined) clock.offsetMs = input.clock_offset_ms;
    ctx.body = { ...faults.describe(), clock_offset_ms: clock.offsetMs };
  });

  router.delete('/faults', (ctx) => {
    faults.clear();
    clock.offsetMs = 0;
    ctx.status = 204;
  });

  router.get('/healthz', (ctx) => {
    ctx.body = { ok: true };
  });

  router.get('/token_requests', (ctx) => {
    const user = users.find(String(queryOf(ctx).user ?? ''));
    if (!user) throw invalidArgument([{ parameter: 'user', message: 'names no simulated user' }]);
    ctx.body = { user: user.uri, ...deps.oauth.tokenRequestsOf(user.uuid) };
  });

  router.get('/api_requests', (ctx) => {
    const reference = queryOf(ctx).user;
    if (reference === undefined) {
      ctx.body = deps.apiUsage.total();
      return;
    }
    const user = users.find(String(reference));
    if (!user) throw invalidArgument([{ parameter: 'user', message: 'names no simulated user' }]);
    ctx.body = { user: user.uri, ...deps.apiUsage.of(user.uuid) };
  });

  router.get('/settings', (ctx) => {
    ctx.body = publicSettings(settings);
  });

  router.post('/settings', (ctx) => {
    replaceSettings(settings, mergeSettings(settings, parseInput(settingsPatchSchema, bodyOf(ctx))));
    ctx.body = publicSettings(settings);
  });

  router.post('/reset', (ctx) => {
    deps.reset();
    ctx.status = 204;
  });

  return router;
}
