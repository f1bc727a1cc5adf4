import { randomUUID } from 'node:crypto';
import { startSimulator, type Simulator } from '@calsync/calendly-sim';
import { createSimUser, simControl, type SimUser } from '@calsync/calendly-sim/testing';
import { startTestIdentity, type IdentityClient, type TestIdentity } from '@calsync/identity/testing';
import { eventsV1 } from '@calsync/proto';
import type { Delivery } from './calendly-fixtures';
import type { TestWorld } from './harness';

export type { SimUser };

export interface SimBooking {
  scheduled_event: { uri: string } & Record<string, unknown>;
  invitee: { uri: string; created_at: string; updated_at: string } & Record<string, unknown>;
}

/**
 * Calendly (the simulator) and a real identity service for meetings tests that fetch from
 * Calendly (backfills and imports), with the simulator's control API as helpers.
 */
export interface CalendlyWorld {
  sim: Simulator;
  identity: IdentityClient;
  /** What a meetings instance needs to reach identity and Calendly. */
  env: { IDENTITY_ADDR: string; CALENDLY_API_URL: string; CALENDLY_AUTH_URL: string };
  control<T>(path: string, body?: unknown, method?: 'GET' | 'POST'): Promise<T>;
  /** A simulated Calendly user connected to `userId` with its personal access token. */
  connectedUser(userId: string): Promise<SimUser>;
  book(user: SimUser, name: string, start: string, extra?: Record<string, unknown>): Promise<SimBooking>;
  cancel(booking: SimBooking, reason?: string): Promise<SimBooking>;
  /** API calls the simulator counted for the user, and those it refused with 429. */
  apiRequests(user: SimUser): Promise<{ requests: number; rate_limited: number }>;
  /** Publishes a BackfillRequested on the world's backfill stream, as subscription does. */
  requestBackfill(
    userId: string,
    user: SimUser | undefined,
    window: { from: string; to: string },
    kind?: eventsV1.BackfillKind,
  ): Promise<eventsV1.BackfillRequested>;
  stop(): Promise<void>;
}

export async function startCalendlyWorld(world: TestWorld): Promise<CalendlyWorld> {
  const sim = await startSimulator({ port: 0 });
  let identityApp: TestIdentity;
  try {
    identityApp = await startTestIdentity({ databaseUrl: world.db.url, sim });
  } catch (error) {
    await sim.stop();
    throw error;
  }
  const identityAddr = identityApp.address;
  const identity = identityApp.client;

  const control = <T>(path: string, body?: unknown, method: 'GET' | 'POST' = 'POST'): Promise<T> =>
    simControl<T>(sim, method, `/_sim${path}`, body);

  return {
    sim,
    identity,
    env: { IDENTITY_ADDR: identityAddr, CALENDLY_API_URL: sim.url, CALENDLY_AUTH_URL: sim.url },
    control,
    async connectedUser(userId) {
      const user = await createSimUser(sim, { name: `Host ${userId}` });
      await identity.connectWithPersonalToken({ userId, token: user.personal_access_token });
      return user;
    },
    book: (user, name, start, extra = {}) =>
      control<SimBooking>('/bookings', {
        user: user.uri,
        invitee: { name, email: `${name.toLowerCase().replace(/\W/g, '')}@example.com` },
        start_time: start,
        end_time: new Date(Date.parse(start) + 30 * 60_000).toISOString(),
        ...extra,
      }),
    cancel: (booking, reason = 'Cannot make it') =>
      control<SimBooking>('/invitees/cancel', { invitee: booking.invitee.uri, reason, canceler_type: 'invitee' }),
    apiRequests: (user) =>
      control<{ requests: number; rate_limited: number }>(
        `/api_requests?user=${encodeURIComponent(user.uri)}`,
        undefined,
        'GET',
      ),
    async requestBackfill(userId, user, window, kind = eventsV1.BackfillKind.BACKFILL_KIND_GAP) {
      const request: eventsV1.BackfillRequested = {
        requestId: randomUUID(),
        userId,
        calendlyUserUri: user?.uri ?? '',
        windowStart: new Date(window.from),
        windowEnd: new Date(window.to),
        reason:
          kind === eventsV1.BackfillKind.BACKFILL_KIND_INITIAL_IMPORT
            ? 'initial import on connect'
            : 'webhook subscription was disabled',
        requestedAt: new Date(),
        kind,
      };
      await world.js.publish(world.names.backfillSubject, eventsV1.BackfillRequested.encode(request).finish(), {
        msgID: request.requestId,
      });
      return request;
    },
    async stop() {
      await identityApp.stop();
      await sim.stop();
    },
  };
}

/** The webhook Calendly sends for a booking's invitee as it is in `booking` (created or canceled). */
export function deliveryOf(user: SimUser, booking: SimBooking): Delivery {
  const canceled = booking.invitee.status === 'canceled';
  const eventType = canceled ? 'invitee.canceled' : 'invitee.created';
  const createdAt = canceled ? booking.invitee.updated_at : booking.invitee.created_at;
  const body = {
    event: eventType,
    created_at: createdAt,
    created_by: user.uri,
    payload: { ...booking.invitee, scheduled_event: booking.scheduled_event },
  };
  return { eventType, createdAt, subjectUri: booking.invitee.uri, body: Buffer.from(JSON.stringify(body)) };
}
