import type { Sealer } from '@calsync/service-kit';
import type { LegacyResolver } from '../verify/verifier';
import { creatorOfLegacyKey, type CachedHook } from './hook-cache';
import type { WebhookRepository, WebhookRow, WebhookScope, WebhookState } from './webhook-repository';

/** The sealing context of a hook's signing key: a key copied onto another row does not open. */
export const signingKeyContext = (hookId: string) => `webhook:${hookId}`;

/** The same text for every hook in a state or scope, rather than a string per row read. */
const states: Record<WebhookState, WebhookState> = {
  pending: 'pending',
  active: 'active',
  disabled: 'disabled',
  missing: 'missing',
  removing: 'removing',
  failed: 'failed',
};
const scopes: Record<WebhookScope, WebhookScope> = { user: 'user', organization: 'organization' };

/** Distinct event lists are few (every hook subscribes to the same handful): one set serves each. */
const eventSets = new Map<string, ReadonlySet<string>>();
const maxEventSets = 1_000;

function eventSetOf(events: readonly string[]): ReadonlySet<string> {
  const key = events.join(' ');
  let set = eventSets.get(key);
  if (!set) {
    // Hooks keep the sets they hold; only the sharing starts over.
    if (eventSets.size >= maxEventSets) eventSets.clear();
    set = new Set(events);
    eventSets.set(key, set);
  }
  return set;
}

/** A hook row as verification uses it, its key opened (kept in memory only). */
export function toCachedHook(row: WebhookRow, sealer: Sealer): CachedHook {
  return {
    hookId: row.hookId,
    userId: row.userId,
    calendlyUserUri: row.calendlyUserUri,
    events: eventSetOf(row.events),
    scope: scopes[row.scope] ?? row.scope,
    legacy: row.legacy,
    refusing: row.state === 'removing',
    state: states[row.state] ?? row.state,
    signingKey: row.signingKeySealed ? sealer.open(row.signingKeySealed, signingKeyContext(row.hookId)) : null,
  };
}

/**
 * Reads hooks for the cache: by path id, or for the legacy URL by its creator (a legacy key),
 * through the unique index; and the users behind organization-wide legacy deliveries.
 */
export function createHookLoader(
  repository: WebhookRepository,
  sealer: Sealer,
): LegacyResolver & {
  load(key: string): Promise<CachedHook | undefined>;
  loadPage(after: string, limit: number): Promise<CachedHook[]>;
} {
  return {
    async loadPage(after, limit) {
      return (await repository.listPage(after, limit)).map((row) => toCachedHook(row, sealer));
    },
    async load(key) {
      const creator = creatorOfLegacyKey(key);
      if (creator !== undefined) {
        const legacy = await repository.findLegacyByCreator(creator);
        return legacy ? toCachedHook(legacy, sealer) : undefined;
      }
      const row = await repository.findByHookId(key);
      // A legacy hook's id never appears in a URL; it is reachable only through created_by.
      return row && !row.legacy ? toCachedHook(row, sealer) : undefined;
    },
    async userOfCalendlyUser(calendlyUserUri) {
      const row = await repository.findUserHookByCalendlyUser(calendlyUserUri);
      return row ? { userId: row.userId, calendlyUserUri: row.calendlyUserUri } : undefined;
    },
  };
}
