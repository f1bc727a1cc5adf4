import {
  identityAdminV1,
  identityV1,
  meetingsAdminV1,
  meetingsV1,
  subscriptionAdminV1,
  subscriptionV1,
} from '@calsync/proto';
import { GrpcStatus, hasCode, type PromiseClient } from '@calsync/service-kit';
import { UsageError } from './config';

export type IdentityClient = PromiseClient<typeof identityV1.IdentityServiceService>;
export type SubscriptionClient = PromiseClient<typeof subscriptionV1.SubscriptionServiceService>;
export type IdentityAdminClient = PromiseClient<typeof identityAdminV1.IdentityAdminServiceService>;
export type SubscriptionAdminClient = PromiseClient<typeof subscriptionAdminV1.SubscriptionAdminServiceService>;
export type MeetingsAdminClient = PromiseClient<typeof meetingsAdminV1.MeetingsAdminServiceService>;
export type MeetingsClient = PromiseClient<typeof meetingsV1.MeetingsServiceService>;

/** What a command found: the JSON printed with --json, the lines printed otherwise, and whether it went wrong. */
export interface CommandResult {
  json: unknown;
  lines: string[];
  /** The command ran but what it reports is a failure (exit code 1). */
  failed?: boolean;
}

const userIdPattern = /^[\x21-\x7e]{1,200}$/;

/** A platform user id as the services take it, or a usage error. */
export function userIdArgument(value: string): string {
  if (!userIdPattern.test(value))
    throw new UsageError(`"${value}" is not a user id (1 to 200 visible ASCII characters)`);
  return value;
}

/** ENUM_PREFIX_NAME as `name`. */
const enumName = (name: string, prefix: string) => name.replace(prefix, '').toLowerCase();
const when = (date: Date | undefined) => (date ? date.toISOString() : '-');

/** NOT_FOUND (a user who never connected, or disconnected) as undefined. */
const unlessNotFound = (error: unknown): undefined => {
  if (hasCode(error, GrpcStatus.NOT_FOUND)) return undefined;
  throw error;
};

/** The sync state's lines: the state (with its reason and detail), then the import's progress. */
function syncStateLines(sync: subscriptionV1.SyncState | undefined): string[] {
  if (!sync) return ['state: none'];
  const reason = sync.reason
    ? ` (${enumName(subscriptionV1.degradedReasonToJSON(sync.reason), 'DEGRADED_REASON_')})`
    : '';
  const lines = [
    `state: ${enumName(subscriptionV1.syncStateNameToJSON(sync.state), 'SYNC_STATE_NAME_')}${reason}` +
      (sync.detail ? `: ${sync.detail}` : ''),
  ];
  const progress = sync.import;
  if (progress) {
    lines.push(
      `import: ${enumName(subscriptionV1.importProgressStatusToJSON(progress.status), 'IMPORT_PROGRESS_STATUS_')}, ` +
        `${progress.eventsImported} events and ${progress.inviteesImported} invitees; requested ${when(progress.requestedAt)}, ` +
        `completed ${when(progress.completedAt)}` +
        (progress.pausedUntil ? `, paused until ${when(progress.pausedUntil)}` : '') +
        (progress.error ? `; error: ${progress.error}` : ''),
    );
  } else lines.push('import: none');
  return lines;
}

/** A user's Calendly connection (identity), and webhooks, sync mode and sync state (subscription). */
export async function status(
  clients: { identity: IdentityClient; subscription: SubscriptionClient },
  userId: string,
): Promise<CommandResult> {
  const [connection, hooks, syncState] = await Promise.all([
    clients.identity.getConnection({ userId }).then((response) => response.connection, unlessNotFound),
    clients.subscription.listUserWebhooks({ userId }),
    clients.subscription.getSyncState({ userId }).then((response) => response.sync, unlessNotFound),
  ]);
  const json = {
    userId,
    connection: connection ? identityV1.Connection.toJSON(connection) : null,
    webhooks: hooks.webhooks.map((hook) => subscriptionV1.Webhook.toJSON(hook)),
    syncMode: subscriptionV1.syncModeToJSON(hooks.syncMode),
    syncModeReason: hooks.syncModeReason || null,
    syncModeSince: hooks.syncModeSince?.toISOString() ?? null,
    lastPolledAt: hooks.lastPolledAt?.toISOString() ?? null,
    syncState: syncState ? subscriptionV1.SyncState.toJSON(syncState) : null,
  };
  const lines = [`user ${userId}`];
  if (!connection) lines.push('connection: none');
  else {
    lines.push(
      `connection: ${enumName(identityV1.connectionStateToJSON(connection.state), 'CONNECTION_STATE_')} ` +
        `(${enumName(identityV1.connectionKindToJSON(connection.kind), 'CONNECTION_KIND_')}) ${connection.calendlyUserUri}`,
      `  connected ${when(connection.connectedAt)}, updated ${when(connection.updatedAt)}`,
    );
  }
  lines.push(
    `sync: ${enumName(subscriptionV1.syncModeToJSON(hooks.syncMode), 'SYNC_MODE_')}` +
      (hooks.syncModeReason ? ` (${hooks.syncModeReason})` : ''),
    ...syncStateLines(connection ? syncState : undefined),
  );
  if (hooks.webhooks.length === 0) lines.push('webhooks: none');
  for (const hook of hooks.webhooks) {
    lines.push(
      `webhook ${hook.hookId}: ${enumName(subscriptionV1.webhookStateToJSON(hook.state), 'WEBHOOK_STATE_')}`,
      `  events ${hook.events.join(', ') || '-'}; last delivery ${when(hook.lastDeliveryAt)}; ` +
        `last verified ${when(hook.lastVerifiedAt)}${hook.lastError ? `; last error: ${hook.lastError}` : ''}`,
    );
  }
  return { json, lines };
}

/** Reconciles one user's webhooks with Calendly now, or every connected user's (userId empty). */
export async function reconcile(clients: { subscription: SubscriptionClient }, userId: string): Promise<CommandResult> {
  const report = await clients.subscription.reconcile({ userId });
  // Every count, zeros included (toJSON would leave zeros out).
  const json = { userId: userId || null, ...report };
  const lines = [
    `reconciled ${userId ? `user ${userId}` : 'every connected user'}: ${report.usersChecked} checked, ` +
      `${report.healthy} healthy, ${report.recreated} recreated, ${report.failed} failed`,
    `  orphans deleted ${report.orphansDeleted}, leftovers deleted ${report.leftoversDeleted}, ` +
      `users disconnected ${report.usersDisconnected}, backfills requested ${report.backfillsRequested}`,
  ];
  return { json, lines, failed: report.failed > 0 };
}

/**
 * Forgets a user in every service, in the gateway's order: subscription first (it deletes the
 * user's webhooks at Calendly with the user's token, so before identity drops it), then
 * identity, then meetings (rows, and the user's messages in the streams). Each step is
 * idempotent: after a failure, run it again.
 */
export async function purge(
  clients: { subscription: SubscriptionClient; identity: IdentityClient; meetings: MeetingsClient },
  userId: string,
): Promise<CommandResult> {
  const subscription = await clients.subscription.purgeUser({ userId });
  const identity = await clients.identity.purgeUser({ userId });
  const meetings = await clients.meetings.purgeUser({ userId });
  const json = {
    userId,
    subscription: { rowsDeleted: subscription.rowsDeleted },
    identity: { rowsDeleted: identity.rowsDeleted },
    meetings: { rowsDeleted: meetings.rowsDeleted, messagesDeleted: meetings.messagesDeleted },
  };
  const lines = [
    `purged user ${userId} in every service`,
    `  subscription ${subscription.rowsDeleted} rows, identity ${identity.rowsDeleted} rows, ` +
      `meetings ${meetings.rowsDeleted} rows and ${meetings.messagesDeleted} messages`,
  ];
  return { json, lines };
}

/** The lower-case names an enum's values go by on the command line, without the UNSPECIFIED one. */
function choicesOf<E extends number>(values: Record<string, E | string>, prefix: string): Map<string, E> {
  return new Map(
    Object.entries(values)
      .filter(([, value]) => typeof value === 'number' && value > 0)
      .map(([name, value]) => [enumName(name, prefix), value as E]),
  );
}

const connectionStates = choicesOf<identityV1.ConnectionState>(identityV1.ConnectionState, 'CONNECTION_STATE_');
const webhookStates = choicesOf<subscriptionV1.WebhookState>(subscriptionV1.WebhookState, 'WEBHOOK_STATE_');
const syncModes = choicesOf<subscriptionV1.SyncMode>(subscriptionV1.SyncMode, 'SYNC_MODE_');

/** A command-line choice (e.g. `reauth_required`) as the enum value, or a usage error naming the choices. */
function choice<E>(option: string, value: string | undefined, choices: Map<string, E>): E | 0 {
  if (value === undefined) return 0;
  const chosen = choices.get(value);
  if (chosen === undefined) throw new UsageError(`--${option} must be one of ${[...choices.keys()].join(', ')}`);
  return chosen;
}

/** How the list commands page: `limit` per call, from `cursor`, every page with `allPages`. */
export interface Paging {
  limit: number;
  cursor: string;
  allPages: boolean;
}

async function collectPages<T>(
  paging: Paging,
  fetchPage: (pageSize: number, cursor: string) => Promise<{ items: T[]; nextCursor: string }>,
): Promise<{ items: T[]; cursor: string }> {
  const items: T[] = [];
  let cursor = paging.cursor;
  do {
    const page = await fetchPage(paging.limit, cursor);
    items.push(...page.items);
    cursor = page.nextCursor;
  } while (paging.allPages && cursor);
  return { items, cursor };
}

/** Every user's Calendly connection (identity), optionally one state's, with its last refresh and last refresh error. */
export async function listConnections(
  clients: { identityAdmin: IdentityAdminClient },
  query: Paging & { state?: string },
): Promise<CommandResult> {
  const state = choice('state', query.state, connectionStates);
  const { items, cursor } = await collectPages(query, async (pageSize, pageCursor) => {
    const page = await clients.identityAdmin.listConnections({ state, pageSize, cursor: pageCursor });
    return { items: page.connections, nextCursor: page.nextCursor };
  });
  const json = {
    connections: items.map((connection) => identityV1.Connection.toJSON(connection)),
    nextCursor: cursor || null,
  };
  const lines = items.map(
    (connection) =>
      `${connection.userId}\t${enumName(identityV1.connectionStateToJSON(connection.state), 'CONNECTION_STATE_')}` +
      `\t${enumName(identityV1.connectionKindToJSON(connection.kind), 'CONNECTION_KIND_')}` +
      `\tlast refresh ${when(connection.lastRefreshedAt)}` +
      (connection.lastRefreshError
        ? `\tlast refresh error ${connection.lastRefreshError} at ${when(connection.lastRefreshErrorAt)}`
        : ''),
  );
  if (items.length === 0) lines.push('no connections');
  if (cursor) lines.push(`more: --cursor ${cursor}`);
  return { json, lines };
}

/** Every user's webhooks (subscription), optionally one state's, one user's or those of users in one sync mode. */
export async function listHooks(
  clients: { subscriptionAdmin: SubscriptionAdminClient },
  query: Paging & { state?: string; syncMode?: string; userId: string },
): Promise<CommandResult> {
  const state = choice('state', query.state, webhookStates);
  const syncMode = choice('sync-mode', query.syncMode, syncModes);
  const { items, cursor } = await collectPages(query, async (pageSize, pageCursor) => {
    const page = await clients.subscriptionAdmin.listHooks({
      state,
      syncMode,
      userId: query.userId,
      pageSize,
      cursor: pageCursor,
    });
    return { items: page.webhooks, nextCursor: page.nextCursor };
  });
  const json = { webhooks: items.map((hook) => subscriptionV1.Webhook.toJSON(hook)), nextCursor: cursor || null };
  const lines = items.map(
    (hook) =>
      `${hook.hookId}\t${hook.userId}\t${enumName(subscriptionV1.webhookStateToJSON(hook.state), 'WEBHOOK_STATE_')}` +
      `\tlast delivery ${when(hook.lastDeliveryAt)}${hook.lastError ? `\tlast error ${hook.lastError}` : ''}`,
  );
  if (items.length === 0) lines.push('no webhooks');
  if (cursor) lines.push(`more: --cursor ${cursor}`);
  return { json, lines };
}

/** Dead letters, newest page first (all pages with `all`). */
export async function listDeadLetters(
  clients: { meetingsAdmin: MeetingsAdminClient },
  query: Paging & { userId: string },
): Promise<CommandResult> {
  const { items: deadLetters, cursor } = await collectPages(query, async (pageSize, pageCursor) => {
    const page = await clients.meetingsAdmin.listDeadLetters({ pageSize, cursor: pageCursor, userId: query.userId });
    return { items: page.deadLetters, nextCursor: page.nextCursor };
  });
  const json = {
    deadLetters,
    nextCursor: cursor || null,
  };
  const lines = deadLetters.map(
    (letter) =>
      `${letter.sequence}\t${when(letter.deadLetteredAt)}\t${letter.userId || '-'}\t${letter.eventType || letter.originalSubject}` +
      `\t${letter.deliveries} deliveries\t${letter.reason}`,
  );
  if (deadLetters.length === 0) lines.push('no dead letters');
  if (cursor) lines.push(`more: --cursor ${cursor}`);
  return { json, lines };
}

/** Replays dead letters through the normal path: by sequence, all of a user's, or all. */
export async function replayDeadLetters(
  clients: { meetingsAdmin: MeetingsAdminClient },
  selection: { sequences: number[]; userId: string; all: boolean },
): Promise<CommandResult> {
  const chosen = [selection.sequences.length > 0, selection.userId !== '', selection.all].filter(Boolean).length;
  if (chosen !== 1) throw new UsageError('choose what to replay: sequence numbers, --user <id> or --all (one of them)');
  const result = await clients.meetingsAdmin.replayDeadLetters({
    sequences: selection.sequences,
    userId: selection.userId,
    all: selection.all,
  });
  return {
    json: result,
    lines: [`replayed ${result.replayed}, not found ${result.notFound}`],
  };
}

/**
 * Re-seals what identity (tokens, PKCE verifiers) and subscription (webhook signing keys) store
 * under their active sealing key; a failure when anything is left under another key (a replica
 * still sealing with the old one, or a value no key opens). Safe to run again.
 */
export async function rotateKeys(clients: {
  identityAdmin: IdentityAdminClient;
  subscriptionAdmin: SubscriptionAdminClient;
}): Promise<CommandResult> {
  const identity = await clients.identityAdmin.rotateSealingKeys({});
  const subscription = await clients.subscriptionAdmin.rotateSealingKeys({});
  const identityDone = identity.settled && identity.unreadable === 0;
  const subscriptionDone = subscription.settled && subscription.unreadable === 0;
  const json = { identity, subscription, done: identityDone && subscriptionDone };
  const lines = [
    `identity: ${identity.resealed} re-sealed under ${identity.activeKeyId}, ${identity.unreadable} unreadable` +
      (identity.settled ? '' : ', not settled (a replica still seals with another key: run again)'),
    `subscription: ${subscription.resealed} signing keys re-sealed under ${subscription.activeKeyId}, ` +
      `${subscription.unreadable} unreadable` +
      (subscription.settled ? '' : ', not settled (a replica still seals with another key: run again)'),
    json.done
      ? 'every secret is sealed with the active key: the old key can leave SEALING_KEYS'
      : "keep the old key in SEALING_KEYS; see the services' logs for what is left, then run again",
  ];
  return { json, lines, failed: !json.done };
}
