import type { Clock } from '../http/clock';
import { calendlyTime } from '../http/clock';
import { ApiError, notFound, permissionDenied, type ErrorDetail } from '../http/errors';
import { newUuid, uuidOf } from '../http/ids';
import type { Principal } from '../oauth/oauth-server';
import { assertValid, pageLink, pageOf, parsePageRequest, type Page } from '../paging/keyset-pager';
import type { SimulatorSettings } from '../settings/settings';
import { refill, type Durable } from '../state/state-file';
import { isAdmin, type Organization, type SimUser, type UserDirectory } from '../users/user-directory';

export const webhookEvents = [
  'invitee.created',
  'invitee.canceled',
  'invitee_no_show.created',
  'invitee_no_show.deleted',
  'routing_form_submission.created',
  'event_type.created',
  'event_type.updated',
  'event_type.deleted',
] as const;
export type WebhookEvent = (typeof webhookEvents)[number];

const organizationOnlyEvents: readonly WebhookEvent[] = ['routing_form_submission.created'];
const inviteeEvents: readonly WebhookEvent[] = [
  'invitee.created',
  'invitee.canceled',
  'invitee_no_show.created',
  'invitee_no_show.deleted',
];

export interface Subscription {
  uuid: string;
  uri: string;
  callbackUrl: string;
  /** The callback URL split once for the delivery agent. */
  callbackOrigin: string;
  callbackPath: string;
  events: WebhookEvent[];
  scope: 'user' | 'organization';
  organization: Organization;
  user: SimUser | null;
  creator: SimUser;
  createdWith: 'personal_access_token' | 'oauth';
  suppliedSigningKey: string | undefined;
  state: 'active' | 'disabled';
  deleted: boolean;
  createdAt: number;
  updatedAt: number;
  retryStartedAt: number | null;
  seq: number;
}

/** Calendly's webhook subscriptions: validation, visibility, paging, and who gets which event. */
export interface SubscriptionRegistry extends Durable {
  create(principal: Principal, body: unknown): Subscription;
  list(principal: Principal, query: Record<string, string | undefined>): Page<Subscription>;
  get(principal: Principal, uuid: string): Subscription;
  remove(principal: Principal, uuid: string): void;
  /** Simulator control: a subscription by uuid or URI, whoever owns it. */
  find(reference: string): Subscription | undefined;
  all(): Subscription[];
  disable(subscription: Subscription): void;
  /** Active subscriptions that hear about `host`'s bookings: theirs (user scope) and their organization's. */
  recipients(host: SimUser): Subscription[];
  /** The key deliveries are signed with and where it comes from; no key means Calendly would send them unsigned. */
  signingKeyOf(subscription: Subscription): { key: string | undefined; source: 'supplied' | 'application' | 'none' };
  clear(): void;
}

const blank = (parameter: string): ErrorDetail => ({ parameter, message: "can't be blank" });

export function createSubscriptionRegistry(deps: {
  baseUrl: string;
  clock: Clock;
  settings: SimulatorSettings;
  users: UserDirectory;
}): SubscriptionRegistry {
  const { baseUrl, clock, settings, users } = deps;
  const byUuid = new Map<string, Subscription>();
  const userScoped = new Map<SimUser, Set<Subscription>>();
  const organizationScoped = new Map<Organization, Set<Subscription>>();
  let seq = 0;
  const collections = { byUuid, userScoped, organizationScoped };

  const indexOf = (subscription: Subscription) =>
    subscription.scope === 'user'
      ? (userScoped.get(subscription.user!) ?? userScoped.set(subscription.user!, new Set()).get(subscription.user!)!)
      : (organizationScoped.get(subscription.organization) ??
        organizationScoped.set(subscription.organization, new Set()).get(subscription.organization)!);

  /** Who may see or delete a subscription: admins of its organization, or the user it belongs to. */
  const visible = (principal: Principal, uuid: string): Subscription => {
    const subscription = byUuid.get(uuid);
    if (!subscription || subscription.organization !== principal.user.organization) throw notFound();
    if (!isAdmin(principal.user) && subscription.user !== principal.user) throw permissionDenied();
    return subscription;
  };

  // Derived from byUuid (rebuilt after a restore, never saved): a create checks its URL against
  // the subscriptions holding that URL only, so creating 100,000 takes linear time, not quadratic.
  const byCallbackUrl = new Map<string, Set<Subscription>>();
  const indexUrl = (subscription: Subscription) => {
    const holders = byCallbackUrl.get(subscription.callbackUrl) ?? new Set<Subscription>();
    byCallbackUrl.set(subscription.callbackUrl, holders.add(subscription));
  };
  const unindexUrl = (subscription: Subscription) => {
    const holders = byCallbackUrl.get(subscription.callbackUrl);
    holders?.delete(subscription);
    if (holders?.size === 0) byCallbackUrl.delete(subscription.callbackUrl);
  };

  const urlTaken = (url: string, organization: Organization, user: SimUser | null): boolean => {
    for (const existing of byCallbackUrl.get(url) ?? []) {
      if (settings.hookUrlUniqueness === 'global') return true;
      if (existing.organization !== organization) continue;
      if (settings.hookUrlUniqueness === 'organization') return true;
      if (existing.user === user) return true;
    }
    return false;
  };

  return {
    create(principal, body) {
      const input = (typeof body === 'object' && body !== null && !Array.isArray(body) ? body : {}) as Record<
        string,
        unknown
      >;
      const details: ErrorDetail[] = [];
      const { url, events, organization, scope, user, group, signing_key: signingKey } = input;
      if (url === undefined || url === null || url === '') details.push(blank('url'));
      else if (typeof url !== 'string' || !/^https?:\/\/[^\s]+$/.test(url) || !URL.canParse(url)) {
        details.push({ parameter: 'url', message: 'is invalid' });
      }
      if (!Array.isArray(events) || events.length === 0) details.push(blank('events'));
      else {
        for (const event of events) {
          if (typeof event !== 'string' || !(webhookEvents as readonly string[]).includes(event)) {
            details.push({ parameter: 'events', message: `${JSON.stringify(event)} is not a valid event` });
          } else if (scope === 'user' && organizationOnlyEvents.includes(event as WebhookEvent)) {
            details.push({ parameter: 'events', message: `${event} is only available in the organization scope` });
          }
        }
      }
      if (organization === undefined || organization === null || organization === '')
        details.push(blank('organization'));
      else if (typeof organization !== 'string' || !uuidOf(organization, 'organizations')) {
        details.push({ parameter: 'organization', message: 'is invalid' });
      }
      if (scope === undefined || scope === null || scope === '') details.push(blank('scope'));
      else if (scope === 'group') {
        details.push({ parameter: 'scope', message: 'group scope is not simulated; use user or organization' });
      } else if (scope !== 'user' && scope !== 'organization') {
        details.push({ parameter: 'scope', message: 'must be one of user, organization, group' });
      }
      if (scope === 'user') {
        if (user === undefined || user === null || user === '') details.push(blank('user'));
        else if (typeof user !== 'string' || !uuidOf(user, 'users'))
          details.push({ parameter: 'user', message: 'is invalid' });
      }
      if (group !== undefined && group !== null && scope !== 'group') {
        details.push({ parameter: 'group', message: 'is only allowed with the group scope' });
      }
      if (
        signingKey !== undefined &&
        signingKey !== null &&
        (typeof signingKey !== 'string' || signingKey.length === 0)
      ) {
        details.push({ parameter: 'signing_key', message: 'must be a non-empty string' });
      }
      assertValid(details);

      const caller = principal.user;
      const org = users.findOrganization(organization as string);
      if (org !== caller.organization) throw permissionDenied();
      let subscribedUser: SimUser | null = null;
      if (scope === 'user') {
        subscribedUser = users.find(user as string) ?? null;
        if (subscribedUser !== caller) {
          throw permissionDenied('A user scope webhook subscription can only be created for the authenticated user.');
        }
      } else if (!isAdmin(caller)) {
        throw permissionDenied(
          'Only organization owners and admins can create organization scope webhook subscriptions.',
        );
      }
      const wanted = [...new Set(events as WebhookEvent[])];
      if (
        principal.via === 'oauth' &&
        !principal.scopes.has('scheduled_events:read') &&
        wanted.some((event) => inviteeEvents.includes(event))
      ) {
        throw permissionDenied('Invitee events require the scheduled_events:read scope.');
      }
      if ((subscribedUser ?? caller).plan === 'free')
        throw permissionDenied('Please upgrade your Calendly account to Standard');
      if (urlTaken(url as string, org, subscribedUser)) {
        throw new ApiError(409, 'Already Exists', 'Hook with this url already exists');
      }

      const uuid = newUuid();
      const now = clock.now();
      const callback = new URL(url as string);
      const subscription: Subscription = {
        uuid,
        uri: `${baseUrl}/webhook_subscriptions/${uuid}`,
        callbackUrl: url as string,
        callbackOrigin: callback.origin,
        callbackPath: `${callback.pathname}${callback.search}`,
        events: wanted,
        scope: scope as 'user' | 'organization',
        organization: org,
        user: subscribedUser,
        creator: caller,
        createdWith: principal.via,
        suppliedSigningKey: typeof signingKey === 'string' ? signingKey : undefined,
        state: 'active',
        deleted: false,
        createdAt: now,
        updatedAt: now,
        retryStartedAt: null,
        seq: (seq += 1),
      };
      byUuid.set(uuid, subscription);
      indexOf(subscription).add(subscription);
      indexUrl(subscription);
      return subscription;
    },

    list(principal, query) {
      const details: ErrorDetail[] = [];
      if (!query.organization) details.push(blank('organization'));
      if (!query.scope) details.push(blank('scope'));
      else if (!['user', 'organization', 'group'].includes(query.scope)) {
        details.push({ parameter: 'scope', message: 'must be one of user, organization, group' });
      }
      if (query.scope === 'user' && !query.user) details.push(blank('user'));
      if (query.scope === 'group' && !query.group) details.push(blank('group'));
      if (query.sort !== undefined && !['created_at:asc', 'created_at:desc'].includes(query.sort)) {
        details.push({ parameter: 'sort', message: 'must be created_at:asc or created_at:desc' });
      }
      const request = parsePageRequest(query, details);
      assertValid(details);

      const caller = principal.user;
      if (users.findOrganization(query.organization!) !== caller.organization) throw permissionDenied();
      let items: Subscription[] = [];
      if (query.scope === 'user') {
        const subject = users.find(query.user!);
        if (!subject || subject.organization !== caller.organization) throw permissionDenied();
        if (subject !== caller && !isAdmin(caller)) throw permissionDenied();
        items = [...(userScoped.get(subject) ?? [])];
      } else if (query.scope === 'organization') {
        if (!isAdmin(caller)) throw permissionDenied();
        items = [...(organizationScoped.get(caller.organization) ?? [])];
      }
      return pageOf({
        items,
        keyOf: (subscription) => [subscription.createdAt, subscription.seq],
        descending: query.sort === 'created_at:desc',
        request,
        link: pageLink(baseUrl, '/webhook_subscriptions', query),
      });
    },

    get: visible,

    remove(principal, uuid) {
      const subscription = visible(principal, uuid);
      subscription.deleted = true;
      byUuid.delete(uuid);
      indexOf(subscription).delete(subscription);
      unindexUrl(subscription);
    },

    find(reference) {
      const uuid = uuidOf(reference, 'webhook_subscriptions');
      return uuid ? byUuid.get(uuid) : undefined;
    },

    all: () => [...byUuid.values()],

    disable(subscription) {
      if (subscription.state === 'disabled') return;
      subscription.state = 'disabled';
      subscription.updatedAt = clock.now();
    },

    recipients(host) {
      const found: Subscription[] = [];
      for (const subscription of userScoped.get(host) ?? [])
        if (subscription.state === 'active') found.push(subscription);
      for (const subscription of organizationScoped.get(host.organization) ?? []) {
        if (subscription.state === 'active') found.push(subscription);
      }
      return found;
    },

    signingKeyOf(subscription) {
      const supplied = subscription.suppliedSigningKey;
      if (subscription.createdWith === 'personal_access_token') {
        return supplied === undefined ? { key: undefined, source: 'none' } : { key: supplied, source: 'supplied' };
      }
      if (settings.oauthSigningKeyMode === 'supplied' && supplied !== undefined)
        return { key: supplied, source: 'supplied' };
      return { key: settings.applicationSigningKey, source: 'application' };
    },

    durableState: () => ({ collections, seq }),
    restoreState(saved) {
      refill(collections, saved.collections);
      seq = saved.seq ?? 0;
      byCallbackUrl.clear();
      for (const subscription of byUuid.values()) indexUrl(subscription);
    },

    clear() {
      for (const subscription of byUuid.values()) subscription.deleted = true;
      byUuid.clear();
      userScoped.clear();
      organizationScoped.clear();
      byCallbackUrl.clear();
    },
  };
}

/** The subscription as Calendly's API shows it: never with its signing key. */
export function subscriptionResource(subscription: Subscription) {
  return {
    uri: subscription.uri,
    callback_url: subscription.callbackUrl,
    created_at: calendlyTime(subscription.createdAt),
    updated_at: calendlyTime(subscription.updatedAt),
    retry_started_at: subscription.retryStartedAt === null ? null : calendlyTime(subscription.retryStartedAt),
    state: subscription.state,
    events: subscription.events,
    scope: subscription.scope,
    organization: subscription.organization.uri,
    user: subscription.user?.uri ?? null,
    group: null,
    creator: subscription.creator.uri,
  };
}
