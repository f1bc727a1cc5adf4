import { z } from 'zod';
import type { Clock } from '../http/clock';
import { conflict, invalidArgument, notFound, permissionDenied, type ErrorDetail } from '../http/errors';
import { newUuid, uuidOf } from '../http/ids';
import { parseInput } from '../http/validation';
import type { Principal } from '../oauth/oauth-server';
import type { SimulatorSettings } from '../settings/settings';
import { refill, type Durable } from '../state/state-file';
import { assertValid, pageLink, pageOf, parsePageRequest, type Page } from '../paging/keyset-pager';
import { isAdmin, type SimUser, type UserDirectory } from '../users/user-directory';
import type { WebhookEvent } from '../webhooks/subscription-registry';
import {
  inviteeResource,
  inviteeWebhookPayload,
  scheduledEventResource,
  type EventType,
  type Invitee,
  type ScheduledEvent,
} from './resources';

/** Tells subscribers about a change to one host's booking; messages reach each subscription in this order. */
export type Notify = (host: SimUser, messages: { event: WebhookEvent; payload: unknown }[]) => void;

const isoTime = z.iso.datetime({ offset: true, message: 'must be an ISO 8601 date-time' });

const bookingSchema = z
  .object({
    user: z.string().min(1),
    invitee: z
      .object({
        name: z.string().min(1),
        email: z.email(),
        first_name: z.string().min(1).optional(),
        last_name: z.string().min(1).optional(),
        timezone: z.string().min(1).optional(),
        questions_and_answers: z
          .array(z.object({ question: z.string(), answer: z.string(), position: z.number().int().min(0).optional() }))
          .optional(),
        tracking: z
          .object({
            utm_campaign: z.string().nullable(),
            utm_source: z.string().nullable(),
            utm_medium: z.string().nullable(),
            utm_content: z.string().nullable(),
            utm_term: z.string().nullable(),
            salesforce_uuid: z.string().nullable(),
          })
          .partial()
          .strict()
          .optional(),
      })
      .strict(),
    start_time: isoTime.optional(),
    end_time: isoTime.optional(),
    event_name: z.string().min(1).max(200).optional(),
    scheduled_event: z.string().min(1).optional(),
    invitees_limit: z.number().int().min(1).max(1000).optional(),
    location: z.looseObject({ type: z.string().min(1) }).optional(),
  })
  .strict();

const cancelSchema = z
  .object({
    invitee: z.string().min(1),
    reason: z.string().max(10_000).optional(),
    canceler_type: z.enum(['host', 'invitee']).optional(),
    canceled_by: z.string().min(1).optional(),
  })
  .strict();

const rescheduleSchema = z.object({ invitee: z.string().min(1), start_time: isoTime, end_time: isoTime }).strict();
const inviteeRefSchema = z.object({ invitee: z.string().min(1) }).strict();

/** An API resource as the control API answers it: what it names, and its fields. */
export interface ApiResource {
  uri: string;
  [field: string]: unknown;
}

/** Scheduled events and invitees: what the control API changes and what the API reads. */
export interface BookingLedger extends Durable {
  book(body: unknown): { scheduled_event: ApiResource; invitee: ApiResource };
  cancel(body: unknown): { scheduled_event: unknown; invitee: unknown };
  reschedule(body: unknown): { scheduled_event: unknown; invitee: unknown; old_invitee: unknown };
  markNoShow(body: unknown): { invitee: unknown; no_show: unknown };
  unmarkNoShow(body: unknown): { invitee: unknown };
  listEvents(principal: Principal, query: Record<string, string | undefined>): Page<unknown>;
  getEvent(principal: Principal, uuid: string): unknown;
  listInvitees(principal: Principal, eventUuid: string, query: Record<string, string | undefined>): Page<unknown>;
  getInvitee(principal: Principal, eventUuid: string, inviteeUuid: string): unknown;
  getNoShow(principal: Principal, uuid: string): unknown;
  getEventType(principal: Principal, uuid: string): EventType;
  clear(): void;
}

export function createBookingLedger(deps: {
  baseUrl: string;
  clock: Clock;
  settings: SimulatorSettings;
  users: UserDirectory;
  notify: Notify;
}): BookingLedger {
  const { baseUrl, clock, users, notify } = deps;
  const events = new Map<string, ScheduledEvent>();
  const invitees = new Map<string, Invitee>();
  const noShows = new Map<string, Invitee>();
  const eventTypes = new Map<string, EventType>();
  const eventTypesByHostAndName = new Map<string, EventType>();
  let seq = 0;
  const collections = { events, invitees, noShows, eventTypes, eventTypesByHostAndName };

  const payload = (invitee: Invitee) => inviteeWebhookPayload(invitee, baseUrl);
  const invitee = (inv: Invitee) => inviteeResource(inv, baseUrl);

  const eventTypeFor = (host: SimUser, name: string, durationMinutes: number): EventType => {
    const key = `${host.uuid}\n${name}`;
    let eventType = eventTypesByHostAndName.get(key);
    if (!eventType) {
      const uuid = newUuid();
      eventType = {
        uuid,
        uri: `${baseUrl}/event_types/${uuid}`,
        name,
        slug:
          name
            .toLowerCase()
            .replace(/[^a-z0-9]+/g, '-')
            .replace(/^-+|-+$/g, '') || 'meeting',
        durationMinutes,
        host,
        createdAt: clock.now(),
      };
      eventTypes.set(uuid, eventType);
      eventTypesByHostAndName.set(key, eventType);
    }
    return eventType;
  };

  const newEvent = (
    host: SimUser,
    name: string,
    startMs: number,
    endMs: number,
    location: Record<string, unknown>,
    limit: number | undefined,
  ): ScheduledEvent => {
    const uuid = newUuid();
    const now = clock.now();
    const event: ScheduledEvent = {
      uuid,
      uri: `${baseUrl}/scheduled_events/${uuid}`,
      name,
      host,
      eventType: eventTypeFor(host, name, Math.max(1, Math.round((endMs - startMs) / 60_000))),
      startMs,
      endMs,
      location,
      status: 'active',
      limit: limit ?? 1,
      limitExplicit: limit !== undefined,
      invitees: [],
      cancellation: null,
      createdAt: now,
      updatedAt: now,
      seq: (seq += 1),
    };
    events.set(uuid, event);
    return event;
  };

  const addInvitee = (
    event: ScheduledEvent,
    from: Omit<Invitee, 'uuid' | 'uri' | 'event' | 'createdAt' | 'updatedAt' | 'seq'>,
  ) => {
    const uuid = newUuid();
    const now = clock.now();
    const added: Invitee = {
      ...from,
      uuid,
      uri: `${event.uri}/invitees/${uuid}`,
      event,
      createdAt: now,
      updatedAt: now,
      seq: (seq += 1),
    };
    event.invitees.push(added);
    event.updatedAt = now;
    invitees.set(uuid, added);
    return added;
  };

  const activeCount = (event: ScheduledEvent) => event.invitees.filter((i) => i.status === 'active').length;

  const findInvitee = (reference: string): Invitee => {
    const uuid = uuidOf(reference, 'invitees');
    const found = uuid ? invitees.get(uuid) : undefined;
    if (!found) throw invalidArgument([{ parameter: 'invitee', message: 'names no simulated invitee' }]);
    return found;
  };

  const cancelInvitee = (target: Invitee, cancellation: Invitee['cancellation']) => {
    const now = clock.now();
    target.status = 'canceled';
    target.cancellation = cancellation;
    target.updatedAt = now;
    const event = target.event;
    event.updatedAt = now;
    // A group event stays active while any invitee still comes.
    if (activeCount(event) === 0) {
      event.status = 'canceled';
      event.cancellation = cancellation;
    }
  };

  const times = (start: string, end: string, details: ErrorDetail[]) => {
    const startMs = Date.parse(start);
    const endMs = Date.parse(end);
    if (endMs <= startMs) details.push({ parameter: 'end_time', message: 'must be after start_time' });
    return { startMs, endMs };
  };

  /** Hosts see their own events; owners and admins see their organization's. */
  const mayRead = (principal: Principal, host: SimUser) =>
    host === principal.user || (isAdmin(principal.user) && host.organization === principal.user.organization);

  const readableEvent = (principal: Principal, uuid: string): ScheduledEvent => {
    const event = events.get(uuid);
    if (!event || event.host.organization !== principal.user.organization) throw notFound();
    if (!mayRead(principal, event.host)) throw permissionDenied();
    return event;
  };

  return {
    book(body) {
      const input = parseInput(bookingSchema, body);
      const details: ErrorDetail[] = [];
      const host = users.find(input.user);
      if (!host) details.push({ parameter: 'user', message: 'names no simulated user' });
      let event: ScheduledEvent | undefined;
      if (input.scheduled_event !== undefined) {
        const uuid = uuidOf(input.scheduled_event, 'scheduled_events');
        event = uuid ? events.get(uuid) : undefined;
        if (!event) details.push({ parameter: 'scheduled_event', message: 'names no simulated scheduled event' });
        else {
          if (host && event.host !== host)
            details.push({ parameter: 'user', message: 'is not the host of scheduled_event' });
          for (const field of ['start_time', 'end_time'] as const) {
            const given = input[field];
            const actual = field === 'start_time' ? event.startMs : event.endMs;
            if (given !== undefined && Date.parse(given) !== actual) {
              details.push({ parameter: field, message: 'differs from the scheduled event’s' });
            }
          }
          if (input.event_name !== undefined && input.event_name !== event.name) {
            details.push({ parameter: 'event_name', message: 'differs from the scheduled event’s' });
          }
        }
      } else {
        if (input.start_time === undefined) details.push({ parameter: 'start_time', message: "can't be blank" });
        if (input.end_time === undefined) details.push({ parameter: 'end_time', message: "can't be blank" });
      }
      const span = input.start_time && input.end_time ? times(input.start_time, input.end_time, details) : undefined;
      assertValid(details);

      if (event) {
        if (event.status === 'canceled') throw conflict('Event Canceled', 'The scheduled event is canceled.');
        if (activeCount(event) >= event.limit) {
          if (event.limitExplicit) {
            throw conflict('Event Full', `The scheduled event already has ${event.limit} active invitees (its limit).`);
          }
          event.limit = activeCount(event) + 1;
        }
        if (input.invitees_limit !== undefined) {
          event.limit = Math.max(input.invitees_limit, activeCount(event) + 1);
          event.limitExplicit = true;
        }
      } else {
        const location = input.location ?? {
          type: 'zoom',
          status: 'pushed',
          join_url: `https://zoom.example.invalid/j/${Math.floor(Math.random() * 1e10)}`,
        };
        event = newEvent(
          host!,
          input.event_name ?? '30 Minute Meeting',
          span!.startMs,
          span!.endMs,
          location,
          input.invitees_limit,
        );
      }
      const added = addInvitee(event, {
        name: input.invitee.name,
        email: input.invitee.email,
        firstName: input.invitee.first_name ?? null,
        lastName: input.invitee.last_name ?? null,
        timezone: input.invitee.timezone ?? host!.timezone,
        questionsAndAnswers: (input.invitee.questions_and_answers ?? []).map((qa, position) => ({
          question: qa.question,
          answer: qa.answer,
          position: qa.position ?? position,
        })),
        tracking: {
          utm_campaign: null,
          utm_source: null,
          utm_medium: null,
          utm_content: null,
          utm_term: null,
          salesforce_uuid: null,
          ...input.invitee.tracking,
        },
        status: 'active',
        rescheduled: false,
        oldInvitee: null,
        newInvitee: null,
        noShow: null,
        cancellation: null,
      });
      notify(event.host, [{ event: 'invitee.created', payload: payload(added) }]);
      return { scheduled_event: scheduledEventResource(event), invitee: invitee(added) };
    },

    cancel(body) {
      const input = parseInput(cancelSchema, body);
      const target = findInvitee(input.invitee);
      if (target.status === 'canceled') throw conflict('Already Canceled', 'The invitee is already canceled.');
      const cancelerType = input.canceler_type ?? 'invitee';
      cancelInvitee(target, {
        canceledBy: input.canceled_by ?? (cancelerType === 'host' ? target.event.host.name : target.name),
        reason: input.reason ?? null,
        cancelerType,
        createdAt: clock.now(),
      });
      notify(target.event.host, [{ event: 'invitee.canceled', payload: payload(target) }]);
      return { scheduled_event: scheduledEventResource(target.event), invitee: invitee(target) };
    },

    reschedule(body) {
      const input = parseInput(rescheduleSchema, body);
      const old = findInvitee(input.invitee);
      const details: ErrorDetail[] = [];
      const { startMs, endMs } = times(input.start_time, input.end_time, details);
      assertValid(details);
      if (old.status === 'canceled') throw conflict('Already Canceled', 'The invitee is already canceled.');
      const from = old.event;
      const event = newEvent(
        from.host,
        from.name,
        startMs,
        endMs,
        from.location,
        from.limitExplicit ? from.limit : undefined,
      );
      const added = addInvitee(event, {
        name: old.name,
        email: old.email,
        firstName: old.firstName,
        lastName: old.lastName,
        timezone: old.timezone,
        questionsAndAnswers: old.questionsAndAnswers,
        tracking: old.tracking,
        status: 'active',
        rescheduled: false,
        oldInvitee: old.uri,
        newInvitee: null,
        noShow: null,
        cancellation: null,
      });
      old.rescheduled = true;
      old.newInvitee = added.uri;
      cancelInvitee(old, { canceledBy: old.name, reason: null, cancelerType: 'invitee', createdAt: clock.now() });
      const canceled = { event: 'invitee.canceled' as const, payload: payload(old) };
      const created = { event: 'invitee.created' as const, payload: payload(added) };
      const order =
        deps.settings.rescheduleOrder === 'random'
          ? Math.random() < 0.5
            ? 'canceled_first'
            : 'created_first'
          : deps.settings.rescheduleOrder;
      notify(from.host, order === 'canceled_first' ? [canceled, created] : [created, canceled]);
      return { scheduled_event: scheduledEventResource(event), invitee: invitee(added), old_invitee: invitee(old) };
    },

    markNoShow(body) {
      const target = findInvitee(parseInput(inviteeRefSchema, body).invitee);
      if (target.status === 'canceled')
        throw conflict('Invitee Canceled', 'A canceled invitee cannot be marked as a no-show.');
      if (target.noShow) throw conflict('Already Exists', 'The invitee is already marked as a no-show.');
      const uuid = newUuid();
      target.noShow = { uuid, uri: `${baseUrl}/invitee_no_shows/${uuid}`, createdAt: clock.now() };
      target.updatedAt = clock.now();
      noShows.set(uuid, target);
      notify(target.event.host, [{ event: 'invitee_no_show.created', payload: payload(target) }]);
      return { invitee: invitee(target), no_show: invitee(target).no_show };
    },

    unmarkNoShow(body) {
      const target = findInvitee(parseInput(inviteeRefSchema, body).invitee);
      if (!target.noShow) throw conflict('Not Found', 'The invitee is not marked as a no-show.');
      noShows.delete(target.noShow.uuid);
      target.noShow = null;
      target.updatedAt = clock.now();
      notify(target.event.host, [{ event: 'invitee_no_show.deleted', payload: payload(target) }]);
      return { invitee: invitee(target) };
    },

    listEvents(principal, query) {
      const details: ErrorDetail[] = [];
      const subjects = ['user', 'organization', 'group'].filter((name) => query[name] !== undefined);
      if (subjects.length === 0)
        details.push({ parameter: 'user', message: 'one of user, organization or group is required' });
      if (query.group !== undefined) details.push({ parameter: 'group', message: 'groups are not simulated' });
      if (query.status !== undefined && query.status !== 'active' && query.status !== 'canceled') {
        details.push({ parameter: 'status', message: 'must be active or canceled' });
      }
      const bound = (name: 'min_start_time' | 'max_start_time') => {
        const raw = query[name];
        if (raw === undefined) return undefined;
        const ms = Date.parse(raw);
        if (!isoTime.safeParse(raw).success || Number.isNaN(ms)) {
          details.push({ parameter: name, message: 'must be an ISO 8601 date-time' });
          return undefined;
        }
        return ms;
      };
      const min = bound('min_start_time');
      const max = bound('max_start_time');
      if (query.sort !== undefined && query.sort !== 'start_time:asc' && query.sort !== 'start_time:desc') {
        details.push({ parameter: 'sort', message: 'must be start_time:asc or start_time:desc' });
      }
      const request = parsePageRequest(query, details);
      assertValid(details);

      const caller = principal.user;
      const subject = query.user !== undefined ? users.find(query.user) : undefined;
      if (query.user !== undefined && (!subject || !mayRead(principal, subject))) throw permissionDenied();
      if (
        query.organization !== undefined &&
        (users.findOrganization(query.organization) !== caller.organization || !isAdmin(caller))
      ) {
        throw permissionDenied();
      }
      const email = query.invitee_email?.toLowerCase();
      const items = [...events.values()].filter(
        (event) =>
          event.host.organization === caller.organization &&
          (subject === undefined || event.host === subject) &&
          (query.status === undefined || event.status === query.status) &&
          (min === undefined || event.startMs >= min) &&
          (max === undefined || event.startMs < max) &&
          (email === undefined || event.invitees.some((i) => i.email.toLowerCase() === email)),
      );
      const page = pageOf({
        items,
        keyOf: (event) => [event.startMs, event.seq],
        descending: query.sort === 'start_time:desc',
        request,
        link: pageLink(baseUrl, '/scheduled_events', query),
      });
      return { collection: page.collection.map(scheduledEventResource), pagination: page.pagination };
    },

    getEvent: (principal, uuid) => scheduledEventResource(readableEvent(principal, uuid)),

    listInvitees(principal, eventUuid, query) {
      const details: ErrorDetail[] = [];
      if (query.status !== undefined && query.status !== 'active' && query.status !== 'canceled') {
        details.push({ parameter: 'status', message: 'must be active or canceled' });
      }
      if (query.sort !== undefined && query.sort !== 'created_at:asc' && query.sort !== 'created_at:desc') {
        details.push({ parameter: 'sort', message: 'must be created_at:asc or created_at:desc' });
      }
      const request = parsePageRequest(query, details);
      assertValid(details);
      const event = readableEvent(principal, eventUuid);
      const email = query.email?.toLowerCase();
      const page = pageOf({
        items: event.invitees.filter(
          (i) =>
            (query.status === undefined || i.status === query.status) &&
            (email === undefined || i.email.toLowerCase() === email),
        ),
        keyOf: (i) => [i.createdAt, i.seq],
        descending: query.sort === 'created_at:desc',
        request,
        link: pageLink(baseUrl, `/scheduled_events/${event.uuid}/invitees`, query),
      });
      return { collection: page.collection.map(invitee), pagination: page.pagination };
    },

    getInvitee(principal, eventUuid, inviteeUuid) {
      const event = readableEvent(principal, eventUuid);
      const found = invitees.get(inviteeUuid);
      if (!found || found.event !== event) throw notFound();
      return invitee(found);
    },

    getNoShow(principal, uuid) {
      const target = noShows.get(uuid);
      if (!target?.noShow) throw notFound();
      readableEvent(principal, target.event.uuid);
      return { uri: target.noShow.uri, invitee: target.uri, created_at: invitee(target).no_show?.created_at };
    },

    getEventType(principal, uuid) {
      const eventType = eventTypes.get(uuid);
      if (!eventType || eventType.host.organization !== principal.user.organization) throw notFound();
      return eventType;
    },

    durableState: () => ({ collections, seq }),
    restoreState(saved) {
      refill(collections, saved.collections);
      seq = saved.seq ?? 0;
    },

    clear() {
      events.clear();
      invitees.clear();
      noShows.clear();
      eventTypes.clear();
      eventTypesByHostAndName.clear();
    },
  };
}
