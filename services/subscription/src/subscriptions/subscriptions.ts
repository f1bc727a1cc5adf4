import type { CalendlyClient, WebhookSubscription } from '@calsync/calendly-client';
import { CalendlyError, coversSubscribedEvents, subscribedEvents } from '@calsync/calendly-client';
import type { Logger, Pool, PoolClient, Sealer } from '@calsync/service-kit';
import type { BackfillPublisher } from '../backfill/backfill-publisher';
import { calendlyFailed, invalidInput, SubscriptionError } from '../errors';
import { firstSchedule, sweepWindow, type PollSettings } from '../polling/poller';
import { createSyncModeRepository, type SyncModeRepository, type SyncModeRow } from '../polling/sync-mode-repository';
import type { CalendlyGrant, Connections } from '../upstream/identity-connections';
import { signingKeyContext } from '../webhooks/hook-loader';
import {
  createWebhookRepository,
  type SigningKeySource,
  type WebhookRepository,
  type WebhookRow,
} from '../webhooks/webhook-repository';
import { callbackUrlOf, hookIdOfCallbackUrl, newHookId, newSigningKey } from '../webhooks/webhook-secrets';
import { withUserLock } from './user-lock';

export type CalendlyWebhooks = Pick<
  CalendlyClient,
  'createWebhookSubscription' | 'listAllWebhookSubscriptions' | 'deleteWebhookSubscription'
>;

/** How one user's sync ended. */
export type SyncOutcome = 'healthy' | 'created' | 'recreated' | 'failed' | 'disconnected' | 'no_webhook' | 'polling';

export interface SyncResult {
  outcome: SyncOutcome;
  /** The user's working hook afterwards (or the failed one that records why there is none). */
  hook: WebhookRow | undefined;
  /** Requests asking meetings to catch up on what polling may have missed (switch to webhook). */
  catchUpsRequested?: number;
  orphansDeleted: number;
  backfillsRequested: number;
  leftoversDeleted: number;
  /** Why the sync failed, safe to show the caller. */
  error?: SubscriptionError;
}

export interface RemoveResult {
  removedLocally: number;
  deletedRemotely: number;
  leftForReconcile: number;
  /** Every row this removal deleted: the hooks, the import request and the sync mode. */
  rowsDeleted: number;
}

export interface Subscriptions {
  /**
   * Makes sure the user has exactly one active subscription, or, when Calendly refuses them one
   * (plan or role), that they are polled (no hook then); throws SubscriptionError when it cannot.
   */
  ensure(userId: string): Promise<{ hook: WebhookRow | undefined; created: boolean; sync: SyncModeRow | undefined }>;
  /** Deletes the user's subscriptions at Calendly where possible and always locally. */
  remove(userId: string): Promise<RemoveResult>;
  list(userId: string): Promise<WebhookRow[]>;
  /** How the user's meetings reach calsync; undefined: they have no sync. */
  syncMode(userId: string): Promise<SyncModeRow | undefined>;
  /** The newest initial import requested for the user (meetings reports its progress), or undefined. */
  initialImport(userId: string): Promise<{ requestId: string; requestedAt: Date } | undefined>;
  /**
   * Forgets the user: removes their subscriptions (at Calendly too, while identity still has
   * their token), then deletes every row of theirs, including leftovers nobody can delete at
   * Calendly any more. Idempotent.
   */
  purge(userId: string): Promise<{ rowsDeleted: number }>;
  /**
   * Compares the user's hooks with Calendly's and repairs them under the user's lock; never
   * throws for Calendly's answers. `grant`: identity's answer for the user when already fetched
   * (a ReconcilePage's), so it is not asked again.
   */
  reconcileUser(userId: string, grant?: CalendlyGrant | SubscriptionError): Promise<SyncResult>;
  /**
   * Reconcile's quick path for a page of users: what they hold here in three queries and their
   * grants in one call to identity, instead of a lock and some eight round trips each.
   */
  prepareReconcile(userIds: string[]): Promise<ReconcilePage>;
}

/** A page of users being reconciled; see Subscriptions.prepareReconcile. */
export interface ReconcilePage {
  /** The user's grant, or why identity gave none: for reconcileUser. */
  grantOf(userId: string): CalendlyGrant | SubscriptionError;
  /**
   * Whether Calendly shows the user exactly as recorded: their one hook active with every event
   * calsync subscribes to, nothing else of ours, no leftover, backfill or switch to a webhook
   * pending. One Calendly request with the user's own token; no lock, no write. Such a user is
   * healthy once `confirm` records it; any other needs reconcileUser, whose locked repair lists
   * Calendly again (what is listed before the lock cannot be acted on).
   */
  isHealthy(userId: string): Promise<boolean>;
  /**
   * Records the hook of every user isHealthy passed as verified now, in one write. Returns the
   * users whose hook changed meanwhile (an Ensure or Remove took their lock): they need reconcileUser.
   */
  confirm(): Promise<string[]>;
}

export interface SubscriptionSettings {
  publicBaseUrl: string;
  applicationSigningKey: string | undefined;
  oauthHonoursSigningKey: boolean;
  /** How far past a gap a backfill reaches, so meetings booked during it for later dates come too. */
  backfillHorizonDays: number;
  /** The initial import's window: meetings that started this many days ago... */
  importPastDays: number;
  /** ...to this many days ahead. */
  importFutureDays: number;
  /** How users Calendly refuses a webhook are polled. */
  polling: PollSettings;
}

/** A backfill starts this long before a gap: no-shows and cancellations of just-past meetings change them too. */
const backfillLookbackMs = 24 * 3600 * 1000;
/** A leftover that cannot be deleted after this many rounds is given up on (Calendly disables it in time). */
const maxLeftoverAttempts = 20;

/**
 * Every table of this service that holds a user's rows. The purge test checks every table of
 * the schema afterwards, so a new table with user data that is missing here fails it.
 */
export const userTables = ['webhooks', 'remote_leftovers', 'initial_imports', 'sync_modes'] as const;

interface Assessed {
  row: WebhookRow;
  remote: WebhookSubscription | undefined;
  /** `outdated`: active, but without an event calsync subscribes to today (Calendly has no update). */
  health: 'active' | 'outdated' | 'disabled' | 'missing';
}

const webhookModeOf = (hook: WebhookRow): SyncModeRow => ({
  userId: hook.userId,
  calendlyUserUri: hook.calendlyUserUri,
  mode: 'webhook',
  reason: '',
  since: hook.createdAt,
  nextPollAt: null,
  nextSweepAt: null,
  lastPolledAt: null,
  lastSweptAt: null,
});

/** A create that failed, with the row that was made for it. */
class ProvisionError extends Error {
  constructor(
    readonly failure: SubscriptionError,
    readonly definitive: boolean,
    /** Set when Calendly refused the user a webhook (its 403: plan or role): why, for the user. */
    readonly refusedBecause?: string,
  ) {
    super(failure.message);
  }
}

/**
 * Per-user webhook work: Ensure, Remove, List and reconcile of one user. Every change for a
 * user happens under that user's advisory lock, so two replicas (or two calls) never create two
 * subscriptions; a replacement is created before what it replaces is deleted, so a user is
 * never left without one.
 */
export function createSubscriptions(deps: {
  log: Logger;
  pool: Pool;
  sealer: Sealer;
  calendly: CalendlyWebhooks;
  connections: Connections;
  backfill: BackfillPublisher;
  settings: SubscriptionSettings;
  now?: () => Date;
}): Subscriptions {
  const { log, calendly, settings } = deps;
  const now = deps.now ?? (() => new Date());

  const keySourceFor = (grant: CalendlyGrant): SigningKeySource =>
    grant.kind === 'personal_token' || settings.oauthHonoursSigningKey ? 'subscription' : 'application';

  const calendlyFailure = (error: unknown, action: string): SubscriptionError => {
    if (error instanceof SubscriptionError) return error;
    if (error instanceof CalendlyError) {
      if (error.status === 403)
        return new SubscriptionError(
          'CALENDLY_FORBIDDEN',
          `Calendly refused to ${action}: ${error.detailsMessage ?? 'forbidden'}`,
          { cause: error },
        );
      return calendlyFailed(error);
    }
    log.error({ err: error, action }, 'unexpected failure talking to Calendly');
    return new SubscriptionError('CALENDLY_CALL_BROKEN', `could not ${action}`, { cause: error });
  };

  /** Calendly's 403 to a webhook call (plan or role): why the user is polled instead, for them to read. */
  const refusalOf = (error: unknown): string | undefined =>
    error instanceof CalendlyError && error.status === 403
      ? `webhook_not_allowed: ${error.detailsMessage ?? 'Calendly refused the webhook'}`
      : undefined;

  const listRemote = (grant: CalendlyGrant) =>
    calendly.listAllWebhookSubscriptions(grant.accessToken, {
      organization: grant.calendlyOrganizationUri,
      scope: 'user',
      user: grant.calendlyUserUri,
    });

  /** Deletes a subscription at Calendly; a failure is kept as a leftover for reconcile to retry. */
  const deleteRemote = async (repo: WebhookRepository, userId: string, grant: CalendlyGrant, uri: string) => {
    try {
      await calendly.deleteWebhookSubscription(grant.accessToken, uri);
      return true;
    } catch (error) {
      const message = calendlyFailure(error, 'delete the webhook subscription').message;
      log.warn(
        { userId, subscription: uri, error: message },
        'could not delete a subscription at Calendly; kept for reconcile',
      );
      await repo.addLeftovers(userId, [uri], message);
      return false;
    }
  };

  /**
   * Creates a new hook at Calendly. The row (with its sealed key) exists before the call, so a
   * delivery racing the response already verifies. A create whose answer was lost is repeated
   * with the same URL and key: 409 then means the first one landed, and it is adopted.
   */
  const provision = async (
    repo: WebhookRepository,
    userId: string,
    grant: CalendlyGrant,
    backfillFrom: Date | null,
  ): Promise<WebhookRow> => {
    const signingKeySource = keySourceFor(grant);
    if (signingKeySource === 'application' && !settings.applicationSigningKey)
      throw new ProvisionError(
        new SubscriptionError(
          'APPLICATION_SIGNING_KEY_MISSING',
          'OAuth connections need CALENDLY_WEBHOOK_SIGNING_KEY, which is not configured',
        ),
        true,
      );
    // A 409 for a URL that is not ours to adopt: one fresh URL is tried before giving up.
    for (let fresh = 0; fresh < 2; fresh++) {
      const hookId = newHookId();
      const signingKey = signingKeySource === 'subscription' ? newSigningKey() : undefined;
      const row = await repo.insert({
        hookId,
        userId,
        calendlyUserUri: grant.calendlyUserUri,
        calendlyOrganizationUri: grant.calendlyOrganizationUri,
        callbackUrl: callbackUrlOf(settings.publicBaseUrl, hookId),
        events: [...subscribedEvents],
        state: 'pending',
        signingKeySource,
        signingKeySealed: signingKey ? deps.sealer.seal(signingKey, signingKeyContext(hookId)) : null,
        backfillFrom,
      });
      const input = {
        url: row.callbackUrl,
        events: row.events,
        organization: grant.calendlyOrganizationUri,
        scope: 'user' as const,
        user: grant.calendlyUserUri,
        signingKey,
      };
      let created: WebhookSubscription | undefined;
      let conflict = false;
      for (let attempt = 0; attempt < 2 && !created && !conflict; attempt++) {
        try {
          created = await calendly.createWebhookSubscription(grant.accessToken, input);
        } catch (error) {
          if (error instanceof CalendlyError && error.status === 409) conflict = true;
          else if (error instanceof CalendlyError && error.transient && attempt === 0) continue;
          else {
            const failure = calendlyFailure(error, 'create the webhook subscription');
            const definitive = !(error instanceof CalendlyError && error.transient);
            await repo.update(hookId, { state: definitive ? 'failed' : 'pending', lastError: failure.message });
            throw new ProvisionError(failure, definitive, refusalOf(error));
          }
        }
      }
      if (conflict) {
        let existing: WebhookSubscription | undefined;
        try {
          existing = (await listRemote(grant)).find((remote) => remote.callback_url === row.callbackUrl);
        } catch (error) {
          const failure = calendlyFailure(error, 'list webhook subscriptions');
          await repo.update(hookId, { lastError: failure.message });
          throw new ProvisionError(failure, false);
        }
        if (existing?.state === 'active') created = existing;
        else {
          // Calendly holds the URL but not as a working subscription of ours: make a fresh one.
          if (existing) await deleteRemote(repo, userId, grant, existing.uri);
          log.warn({ userId, hookId }, 'calendly says the callback URL exists; replacing it with a fresh one');
          await repo.delete([hookId]);
          continue;
        }
      }
      const verifiedAt = now();
      const patch = {
        state: 'active' as const,
        calendlySubscriptionUri: created!.uri,
        lastVerifiedAt: verifiedAt,
        lastError: null,
      };
      await repo.update(hookId, patch);
      return { ...row, ...patch };
    }
    throw new ProvisionError(
      new SubscriptionError('CALLBACK_URL_TAKEN', 'Calendly kept answering that the callback URL already exists'),
      false,
    );
  };

  /** When the oldest of these hooks stopped delivering, for those that ever delivered. */
  const gapStartOf = (assessed: Assessed[]): Date | null => {
    let start: number | undefined;
    for (const { row, remote } of assessed) {
      const candidates: number[] = [];
      if (row.backfillFrom) candidates.push(row.backfillFrom.getTime());
      if (row.calendlySubscriptionUri) {
        candidates.push((row.lastVerifiedAt ?? row.createdAt).getTime());
        const retrying = remote?.retry_started_at ? Date.parse(remote.retry_started_at) : NaN;
        if (!Number.isNaN(retrying)) candidates.push(retrying);
      }
      for (const candidate of candidates) start = start === undefined ? candidate : Math.min(start, candidate);
    }
    return start === undefined ? null : new Date(start);
  };

  /** Publishes the hook's pending backfill, if any; a failure leaves it for the next sync. */
  const publishBackfill = async (repo: WebhookRepository, hook: WebhookRow): Promise<number> => {
    if (!hook.backfillFrom) return 0;
    const windowEnd = new Date(now().getTime() + settings.backfillHorizonDays * 24 * 3600 * 1000);
    try {
      await deps.backfill.publish({
        requestId: `backfill:${hook.hookId}`,
        userId: hook.userId,
        calendlyUserUri: hook.calendlyUserUri,
        windowStart: new Date(hook.backfillFrom.getTime() - backfillLookbackMs),
        windowEnd,
        reason: 'webhook replaced after a delivery gap',
        kind: 'gap',
      });
    } catch (error) {
      log.warn({ err: error, userId: hook.userId, hookId: hook.hookId }, 'could not request a backfill; will retry');
      return 0;
    }
    await repo.update(hook.hookId, { backfillFrom: null });
    hook.backfillFrom = null;
    return 1;
  };

  const sweepLeftovers = async (repo: WebhookRepository, userId: string, grant: CalendlyGrant) => {
    let deleted = 0;
    for (const leftover of await repo.listLeftovers(userId)) {
      try {
        await calendly.deleteWebhookSubscription(grant.accessToken, leftover.calendlySubscriptionUri);
        await repo.removeLeftover(leftover.calendlySubscriptionUri);
        deleted += 1;
      } catch (error) {
        const message = calendlyFailure(error, 'delete the webhook subscription').message;
        if (leftover.attempts + 1 >= maxLeftoverAttempts) {
          log.warn(
            { userId, subscription: leftover.calendlySubscriptionUri, error: message },
            'giving up on a leftover',
          );
          await repo.removeLeftover(leftover.calendlySubscriptionUri);
        } else await repo.failLeftover(leftover.calendlySubscriptionUri, message);
      }
    }
    return deleted;
  };

  /** Local cleanup of a user whose connection is gone: refuse their hooks now, delete remotely later. */
  const forgetDisconnected = async (client: PoolClient, userId: string) => {
    const repo = createWebhookRepository(client);
    await createSyncModeRepository(client).forget(userId);
    const rows = await repo.markUserRemoving(userId);
    await repo.releaseShared(userId);
    const uris = rows.flatMap((row) => (row.calendlySubscriptionUri ? [row.calendlySubscriptionUri] : []));
    await repo.addLeftovers(userId, uris, 'the user has no Calendly connection');
    await repo.delete(rows.map((row) => row.hookId));
    return rows.length;
  };

  /**
   * Records the user as synced by `hook`. A user who was polled first gets one last sweep, asked
   * for after the hook exists, so whatever changed since their last poll arrives too; until that
   * request is stored they stay polled (and the next sync asks again with the same request id).
   */
  const switchToWebhook = async (
    modes: SyncModeRepository,
    synced: SyncModeRow | undefined,
    hook: WebhookRow,
    grant: CalendlyGrant,
  ): Promise<number> => {
    let requested = 0;
    if (synced?.mode === 'polling') {
      try {
        await deps.backfill.publish({
          kind: 'gap',
          requestId: `catch-up:${hook.hookId}`,
          userId: hook.userId,
          calendlyUserUri: grant.calendlyUserUri,
          ...sweepWindow(settings.polling, now()),
          reason: 'polling ended: catch-up over the gap before the webhook',
        });
      } catch (error) {
        log.warn({ err: error, userId: hook.userId }, 'could not request the catch-up after polling; still polling');
        return 0;
      }
      requested = 1;
      log.info({ userId: hook.userId, hookId: hook.hookId }, 'user switched from polling to webhook');
    }
    await modes.useWebhook(hook.userId, grant.calendlyUserUri);
    return requested;
  };

  /** The shared heart of Ensure and reconcile, run under the user's lock. */
  const syncLocked = async (
    client: PoolClient,
    userId: string,
    grant: CalendlyGrant,
    mode: 'ensure' | 'reconcile',
  ): Promise<SyncResult> => {
    const repo = createWebhookRepository(client);
    const result: SyncResult = {
      outcome: 'healthy',
      hook: undefined,
      orphansDeleted: 0,
      backfillsRequested: 0,
      leftoversDeleted: await sweepLeftovers(repo, userId, grant),
    };
    const modes = createSyncModeRepository(client);
    const synced = await modes.get(userId);
    const all = await repo.listByUser(userId, { includeLegacy: true });
    const rows = all.filter((row) => !row.legacy && row.state !== 'removing');
    // Reconcile repairs webhooks, moves legacy users onto their own and polled users onto one
    // once Calendly allows it; whether anyone else should have one is Ensure's call.
    if (mode === 'reconcile' && all.length === 0 && synced?.mode !== 'polling')
      return { ...result, outcome: 'no_webhook' };
    const recordError = async (error: SubscriptionError) => {
      for (const row of rows) await repo.update(row.hookId, { lastError: error.message });
      return { ...result, outcome: 'failed' as const, error, hook: rows.at(-1) };
    };
    /**
     * Synced by polling until Calendly allows a webhook (reconcile keeps asking). A user who had
     * one until now gets an immediate sweep for the gap; a new one has just been imported.
     */
    const pollInstead = async (reason: string, hook: WebhookRow | undefined): Promise<SyncResult> => {
      await modes.usePolling(
        userId,
        grant.calendlyUserUri,
        reason,
        firstSchedule(settings.polling, userId, now(), synced?.mode === 'webhook'),
      );
      if (synced?.mode !== 'polling') log.info({ userId, reason }, 'user switched to polling');
      return { ...result, outcome: 'polling', hook };
    };

    let remote: WebhookSubscription[];
    try {
      remote = await listRemote(grant);
    } catch (error) {
      const failure = await recordError(calendlyFailure(error, 'list webhook subscriptions'));
      // Whether Calendly lets a plan without webhooks list them is not documented: a 403 here is
      // the same refusal as on create.
      const refused = refusalOf(error);
      return refused ? pollInstead(refused, failure.hook) : failure;
    }
    const ours = remote.filter((subscription) =>
      hookIdOfCallbackUrl(settings.publicBaseUrl, subscription.callback_url),
    );
    const byCallback = new Map(ours.map((subscription) => [subscription.callback_url, subscription]));
    const assessed: Assessed[] = rows.map((row) => {
      // The callback URL carries the hook id, so it identifies our subscription even when the
      // create's answer (and with it the URI) was lost.
      const match = row.calendlyUserUri === grant.calendlyUserUri ? byCallback.get(row.callbackUrl) : undefined;
      const health: Assessed['health'] = !match
        ? 'missing'
        : match.state !== 'active'
          ? 'disabled'
          : coversSubscribedEvents(match.events)
            ? 'active'
            : 'outdated';
      return { row, remote: match, health };
    });
    const claimed = new Set(assessed.flatMap((entry) => (entry.remote ? [entry.remote.uri] : [])));
    for (const orphan of ours.filter((subscription) => !claimed.has(subscription.uri))) {
      if (await deleteRemote(repo, userId, grant, orphan.uri)) result.orphansDeleted += 1;
    }

    const healthy = assessed.filter((entry) => entry.health === 'active');
    let keep: WebhookRow;
    if (healthy.length > 0) {
      const chosen = healthy.reduce((newest, entry) => (entry.row.createdAt > newest.row.createdAt ? entry : newest));
      const patch = {
        state: 'active' as const,
        calendlySubscriptionUri: chosen.remote!.uri,
        lastVerifiedAt: now(),
        lastError: null,
        downSince: null,
      };
      await repo.update(chosen.row.hookId, patch);
      keep = { ...chosen.row, ...patch };
      result.outcome = 'healthy';
    } else {
      const downSince = now();
      try {
        // An outdated hook still delivers what it has: only hooks that stopped leave a gap.
        keep = await provision(
          repo,
          userId,
          grant,
          gapStartOf(assessed.filter((entry) => entry.health !== 'outdated')),
        );
      } catch (error) {
        if (!(error instanceof ProvisionError)) throw error;
        // Earlier attempts that never reached Calendly are superseded by this one's row, which
        // records why the user has no webhook; hooks that did exist keep the start of their gap.
        const deadAttempts = assessed.filter((entry) => !entry.row.calendlySubscriptionUri && !entry.remote);
        await repo.delete(deadAttempts.map((entry) => entry.row.hookId));
        for (const entry of assessed) {
          if (deadAttempts.includes(entry)) continue;
          await repo.update(entry.row.hookId, {
            state: entry.health === 'outdated' ? 'active' : entry.health,
            downSince: entry.health === 'outdated' ? entry.row.downSince : (entry.row.downSince ?? downSince),
            lastError: error.failure.message,
          });
        }
        const left = await repo.listByUser(userId);
        if (error.refusedBecause) return pollInstead(error.refusedBecause, left.at(-1));
        return { ...result, outcome: 'failed', error: error.failure, hook: left.at(-1) };
      }
      result.outcome = rows.length === 0 ? 'created' : 'recreated';
    }

    for (const entry of assessed) {
      if (entry.row.hookId === keep.hookId) continue;
      if (entry.remote) await deleteRemote(repo, userId, grant, entry.remote.uri);
      await repo.delete([entry.row.hookId]);
    }
    result.catchUpsRequested = await switchToWebhook(modes, synced, keep, grant);
    result.backfillsRequested = await publishBackfill(repo, keep);
    result.hook = keep;
    return result;
  };

  /**
   * Asks meetings, once per connected Calendly account, for every meeting Calendly already holds,
   * through the same backfill (and so the same applier and inbox) as deliveries: a webhook and the
   * import of the same change never conflict. Before the webhook is made, so a user whose plan
   * cannot have one still gets their meetings. A failure to publish leaves it for the next Ensure.
   */
  const requestInitialImport = async (client: PoolClient, userId: string, grant: CalendlyGrant) => {
    const { rowCount } = await client.query(
      'SELECT 1 FROM initial_imports WHERE user_id = $1 AND calendly_user_uri = $2',
      [userId, grant.calendlyUserUri],
    );
    if (rowCount) return;
    const at = now().getTime();
    const requestId = `import:${userId}:${grant.calendlyUserUri}:${at}`;
    try {
      await deps.backfill.publish({
        requestId,
        userId,
        calendlyUserUri: grant.calendlyUserUri,
        windowStart: new Date(at - settings.importPastDays * 24 * 3600 * 1000),
        windowEnd: new Date(at + settings.importFutureDays * 24 * 3600 * 1000),
        reason: 'initial import on connect',
        kind: 'initial_import',
      });
    } catch (error) {
      log.warn({ err: error, userId }, 'could not request the initial import; the next ensure asks again');
      return;
    }
    await client.query(
      'INSERT INTO initial_imports (user_id, calendly_user_uri, request_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING',
      [userId, grant.calendlyUserUri, requestId],
    );
    log.info({ userId }, 'initial import requested');
  };

  const grantOrThrow = async (userId: string) => deps.connections.grantFor(userId);

  const requireUserId = (userId: string) => {
    if (!userId || userId.length > 200) throw invalidInput('user_id is required');
  };

  const subscriptions: Subscriptions = {
    async ensure(userId) {
      requireUserId(userId);
      const grant = await grantOrThrow(userId);
      const result = await withUserLock(deps.pool, userId, async (client) => {
        await requestInitialImport(client, userId, grant);
        const synced = await syncLocked(client, userId, grant, 'ensure');
        return { ...synced, sync: await createSyncModeRepository(client).get(userId) };
      });
      if (result.outcome === 'polling') {
        log.info({ userId, outcome: result.outcome }, 'webhook refused; user is polled');
        return { hook: undefined, created: false, sync: result.sync };
      }
      if (result.error || !result.hook) throw result.error ?? new SubscriptionError('NO_WEBHOOK', 'no webhook');
      log.info({ userId, hookId: result.hook.hookId, outcome: result.outcome }, 'webhook ensured');
      return {
        hook: result.hook,
        created: result.outcome === 'created' || result.outcome === 'recreated',
        sync: result.sync,
      };
    },

    async remove(userId) {
      requireUserId(userId);
      return withUserLock(deps.pool, userId, async (client) => {
        const repo = createWebhookRepository(client);
        // Refused by every replica from this commit on, whatever happens at Calendly. A shared
        // organization-wide legacy subscription stays for the others; only the user's claim goes.
        const rows = await repo.markUserRemoving(userId);
        await repo.releaseShared(userId);
        // Connecting again imports again: what happened meanwhile was never delivered.
        const imports = await client.query('DELETE FROM initial_imports WHERE user_id = $1', [userId]);
        const modes = await createSyncModeRepository(client).forget(userId);
        const result: RemoveResult = { removedLocally: 0, deletedRemotely: 0, leftForReconcile: 0, rowsDeleted: 0 };
        const remoteUris = rows.flatMap((row) => (row.calendlySubscriptionUri ? [row.calendlySubscriptionUri] : []));
        let grant: CalendlyGrant | undefined;
        if (remoteUris.length > 0) {
          try {
            grant = await grantOrThrow(userId);
          } catch (error) {
            const reason = error instanceof SubscriptionError ? error.message : 'identity failed';
            await repo.addLeftovers(userId, remoteUris, reason);
            result.leftForReconcile = remoteUris.length;
          }
        }
        if (grant) {
          for (const uri of remoteUris) {
            if (await deleteRemote(repo, userId, grant, uri)) result.deletedRemotely += 1;
            else result.leftForReconcile += 1;
          }
        }
        result.removedLocally = await repo.delete(rows.map((row) => row.hookId));
        result.rowsDeleted = result.removedLocally + (imports.rowCount ?? 0) + modes;
        log.info({ userId, ...result }, 'webhooks removed');
        return result;
      });
    },

    list(userId) {
      requireUserId(userId);
      return createWebhookRepository(deps.pool).listByUser(userId, { includeLegacy: true });
    },

    async syncMode(userId) {
      requireUserId(userId);
      const recorded = await createSyncModeRepository(deps.pool).get(userId);
      if (recorded) return recorded;
      // A hook recorded without a sync (a legacy import) is still a webhook sync.
      const active = (await createWebhookRepository(deps.pool).listByUser(userId, { includeLegacy: true })).find(
        (row) => row.state === 'active',
      );
      return active && webhookModeOf(active);
    },

    async initialImport(userId) {
      requireUserId(userId);
      const { rows } = await deps.pool.query<{ request_id: string; requested_at: Date }>(
        'SELECT request_id, requested_at FROM initial_imports WHERE user_id = $1 ORDER BY requested_at DESC LIMIT 1',
        [userId],
      );
      return rows[0] ? { requestId: rows[0].request_id, requestedAt: rows[0].requested_at } : undefined;
    },

    async purge(userId) {
      const removed = await subscriptions.remove(userId);
      // A subscription Calendly could not delete now stays a leftover no one can delete later
      // (the token goes with the user): Calendly disables it once its deliveries find no hook.
      return withUserLock(deps.pool, userId, async (client) => {
        let rowsDeleted = removed.rowsDeleted;
        for (const table of userTables) {
          const result = await client.query(`DELETE FROM ${table} WHERE user_id = $1`, [userId]);
          rowsDeleted += result.rowCount ?? 0;
        }
        log.info({ userId, rowsDeleted }, 'user purged');
        return { rowsDeleted };
      });
    },

    async prepareReconcile(userIds) {
      const [grants, hooks, leftovers, modes] = await Promise.all([
        deps.connections.grantsFor(userIds),
        createWebhookRepository(deps.pool).listByUsers(userIds),
        createWebhookRepository(deps.pool).usersWithLeftovers(userIds),
        createSyncModeRepository(deps.pool).getMany(userIds),
      ]);
      const verified: { userId: string; hookId: string; calendlySubscriptionUri: string }[] = [];
      return {
        grantOf: (userId) =>
          grants.get(userId) ?? new SubscriptionError('IDENTITY_UNAVAILABLE', 'identity did not answer for the user'),
        async isHealthy(userId) {
          const grant = grants.get(userId);
          const rows = hooks.get(userId) ?? [];
          const row = rows[0];
          const synced = modes.get(userId);
          // Only the plain case: anything else is repaired under the lock.
          if (
            !grant ||
            grant instanceof SubscriptionError ||
            leftovers.has(userId) ||
            rows.length !== 1 ||
            !row ||
            row.legacy ||
            row.state !== 'active' ||
            row.backfillFrom ||
            row.calendlyUserUri !== grant.calendlyUserUri ||
            synced?.mode !== 'webhook' ||
            synced.calendlyUserUri !== grant.calendlyUserUri
          )
            return false;
          let remote: WebhookSubscription[];
          try {
            remote = await listRemote(grant);
          } catch {
            return false;
          }
          const ours = remote.filter((subscription) =>
            hookIdOfCallbackUrl(settings.publicBaseUrl, subscription.callback_url),
          );
          const match = ours[0];
          if (
            ours.length !== 1 ||
            !match ||
            match.callback_url !== row.callbackUrl ||
            match.state !== 'active' ||
            !coversSubscribedEvents(match.events)
          )
            return false;
          verified.push({ userId, hookId: row.hookId, calendlySubscriptionUri: match.uri });
          return true;
        },
        async confirm() {
          const entries = verified.splice(0);
          const written = await createWebhookRepository(deps.pool).confirmVerified(entries, now());
          return entries.filter((entry) => !written.has(entry.hookId)).map((entry) => entry.userId);
        },
      };
    },

    async reconcileUser(userId, known) {
      const empty = { hook: undefined, orphansDeleted: 0, backfillsRequested: 0, leftoversDeleted: 0 };
      let grant: CalendlyGrant;
      try {
        if (known instanceof SubscriptionError) throw known;
        grant = known ?? (await grantOrThrow(userId));
      } catch (error) {
        return withUserLock(deps.pool, userId, async (client) => {
          const repo = createWebhookRepository(client);
          if (error instanceof SubscriptionError && error.failure === 'NOT_CONNECTED') {
            const forgotten = await forgetDisconnected(client, userId);
            log.info({ userId, hooks: forgotten }, 'user has no connection; hooks forgotten');
            return { ...empty, outcome: 'disconnected' as const };
          }
          const failure =
            error instanceof SubscriptionError
              ? error
              : new SubscriptionError('IDENTITY_UNAVAILABLE', 'identity failed', { cause: error });
          for (const row of await repo.listByUser(userId))
            await repo.update(row.hookId, { lastError: failure.message });
          return { ...empty, outcome: 'failed' as const, error: failure };
        });
      }
      return withUserLock(deps.pool, userId, (client) => syncLocked(client, userId, grant, 'reconcile'));
    },
  };
  return subscriptions;
}
