import type { Pool, PoolClient } from '@calsync/service-kit';
import type { SyncModeName } from '../polling/sync-mode-repository';

/** Where a hook is in its life. Only `removing` hooks (and deleted ones) refuse deliveries. */
export type WebhookState = 'pending' | 'active' | 'disabled' | 'missing' | 'removing' | 'failed';
export type SigningKeySource = 'subscription' | 'application';
export type WebhookScope = 'user' | 'organization';

/** A pool, or one client holding a lock: every repository query runs on whichever it is given. */
export type Db = Pool | PoolClient;

export interface WebhookRow {
  hookId: string;
  userId: string;
  calendlyUserUri: string;
  calendlyOrganizationUri: string;
  calendlySubscriptionUri: string | null;
  callbackUrl: string;
  events: string[];
  scope: WebhookScope;
  legacy: boolean;
  state: WebhookState;
  signingKeySource: SigningKeySource;
  signingKeySealed: string | null;
  createdAt: Date;
  updatedAt: Date;
  lastVerifiedAt: Date | null;
  lastDeliveryAt: Date | null;
  lastError: string | null;
  downSince: Date | null;
  backfillFrom: Date | null;
  /** The last refused delivery to this hook (a bad signature, timestamp or payload) and why. */
  lastRefusedAt: Date | null;
  lastRefusal: string | null;
}

/** What a caller supplies to insert a hook; bookkeeping columns start empty. */
export type NewWebhook = Pick<
  WebhookRow,
  | 'hookId'
  | 'userId'
  | 'calendlyUserUri'
  | 'calendlyOrganizationUri'
  | 'callbackUrl'
  | 'events'
  | 'state'
  | 'signingKeySource'
  | 'signingKeySealed'
> &
  Partial<Pick<WebhookRow, 'calendlySubscriptionUri' | 'scope' | 'legacy' | 'backfillFrom' | 'lastVerifiedAt'>>;

/** The columns a sync may change on an existing hook. */
export type WebhookPatch = Partial<
  Pick<WebhookRow, 'state' | 'calendlySubscriptionUri' | 'lastVerifiedAt' | 'lastError' | 'downSince' | 'backfillFrom'>
>;

export interface RemoteLeftover {
  calendlySubscriptionUri: string;
  userId: string;
  recordedAt: Date;
  attempts: number;
  lastError: string | null;
}

const columns = `hook_id, user_id, calendly_user_uri, calendly_organization_uri, calendly_subscription_uri,
  callback_url, events, scope, legacy, state, signing_key_source, signing_key_sealed, created_at, updated_at,
  last_verified_at, last_delivery_at, last_error, down_since, backfill_from, last_refused_at, last_refusal`;

interface Row {
  hook_id: string;
  user_id: string;
  calendly_user_uri: string;
  calendly_organization_uri: string;
  calendly_subscription_uri: string | null;
  callback_url: string;
  events: string[];
  scope: WebhookScope;
  legacy: boolean;
  state: WebhookState;
  signing_key_source: SigningKeySource;
  signing_key_sealed: string | null;
  created_at: Date;
  updated_at: Date;
  last_verified_at: Date | null;
  last_delivery_at: Date | null;
  last_error: string | null;
  down_since: Date | null;
  backfill_from: Date | null;
  last_refused_at: Date | null;
  last_refusal: string | null;
}

function fromRow(row: Row): WebhookRow {
  return {
    hookId: row.hook_id,
    userId: row.user_id,
    calendlyUserUri: row.calendly_user_uri,
    calendlyOrganizationUri: row.calendly_organization_uri,
    calendlySubscriptionUri: row.calendly_subscription_uri,
    callbackUrl: row.callback_url,
    events: row.events,
    scope: row.scope,
    legacy: row.legacy,
    state: row.state,
    signingKeySource: row.signing_key_source,
    signingKeySealed: row.signing_key_sealed,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    lastVerifiedAt: row.last_verified_at,
    lastDeliveryAt: row.last_delivery_at,
    lastError: row.last_error,
    downSince: row.down_since,
    backfillFrom: row.backfill_from,
    lastRefusedAt: row.last_refused_at,
    lastRefusal: row.last_refusal,
  };
}

const patchColumns: Record<keyof WebhookPatch, string> = {
  state: 'state',
  calendlySubscriptionUri: 'calendly_subscription_uri',
  lastVerifiedAt: 'last_verified_at',
  lastError: 'last_error',
  downSince: 'down_since',
  backfillFrom: 'backfill_from',
};

/** Which hooks a page holds: one state's, one user's, or those of users in one sync mode. */
export interface WebhookFilter {
  state?: WebhookState;
  userId?: string;
  syncMode?: SyncModeName;
}

/** Rows per INSERT when seeding many hooks at once (keeps each statement under the bind limit). */
const insertBatch = 1_000;

/** Postgres access to the webhooks and remote_leftovers tables. */
export interface WebhookRepository {
  findByHookId(hookId: string): Promise<WebhookRow | undefined>;
  /** The legacy subscription created by this Calendly user (the envelope's created_by). */
  findLegacyByCreator(calendlyUserUri: string): Promise<WebhookRow | undefined>;
  /** Any current hook of this Calendly user (own ones first), for routing organization-scoped legacy deliveries. */
  findUserHookByCalendlyUser(calendlyUserUri: string): Promise<WebhookRow | undefined>;
  /** Every hook of the user, oldest first (not a shared one they released when they disconnected). */
  listByUser(userId: string, options?: { includeLegacy?: boolean }): Promise<WebhookRow[]>;
  /** listByUser with legacy hooks for many users in one query, by user (users without hooks are absent). */
  listByUsers(userIds: string[]): Promise<Map<string, WebhookRow[]>>;
  listLegacy(): Promise<WebhookRow[]>;
  /**
   * Every hook (legacy ones too) in id order after `after`, optionally only one state's, one
   * user's or those of users in one sync mode: the cache's warm-up pages and the operators' fleet view.
   */
  listPage(after: string, limit: number, filter?: WebhookFilter): Promise<WebhookRow[]>;
  /** How many hooks are in each state (states with none are absent). */
  countByState(): Promise<Map<WebhookState, number>>;
  insert(hook: NewWebhook): Promise<WebhookRow>;
  insertMany(hooks: NewWebhook[]): Promise<void>;
  update(hookId: string, patch: WebhookPatch): Promise<void>;
  /**
   * Marks every hook that is the user's alone `removing` (so every replica refuses them at once)
   * and returns them. A shared hook, an organization-wide legacy subscription, is not theirs
   * alone: it is left to the retire command.
   */
  markUserRemoving(userId: string): Promise<WebhookRow[]>;
  /** Takes a disconnected user's claim off the shared hooks they created; returns how many. */
  releaseShared(userId: string): Promise<number>;
  delete(hookIds: string[]): Promise<number>;
  /** Records when hooks last verified a delivery; never moves a time backwards. */
  recordDeliveries(deliveries: ReadonlyMap<string, Date>): Promise<void>;
  /** Records each hook's last refused delivery and why; never moves a time backwards. */
  recordRefusals(refusals: ReadonlyMap<string, { at: Date; reason: string }>): Promise<void>;
  /** Users with hooks or remote leftovers, in id order after `after`: the reconciler's work list. */
  listUserIds(after: string, limit: number): Promise<string[]>;
  /** Users with a hook but no active per-user hook: the ones still relying on the legacy URL. */
  usersWithoutActiveHook(limit: number): Promise<string[]>;
  addLeftovers(userId: string, subscriptionUris: string[], error: string): Promise<void>;
  listLeftovers(userId: string): Promise<RemoteLeftover[]>;
  /** Which of these users have remote leftovers. */
  usersWithLeftovers(userIds: string[]): Promise<Set<string>>;
  /**
   * Records each hook as verified `at` against the Calendly subscription given (active, no
   * error, not down), in one statement, unless it changed meanwhile: only a hook still `active`
   * with no backfill pending is written. Returns the hook ids written.
   */
  confirmVerified(hooks: { hookId: string; calendlySubscriptionUri: string }[], at: Date): Promise<Set<string>>;
  removeLeftover(subscriptionUri: string): Promise<void>;
  failLeftover(subscriptionUri: string, error: string): Promise<void>;
}

export function createWebhookRepository(db: Db): WebhookRepository {
  const one = async (sql: string, params: unknown[]) => {
    const result = await db.query<Row>(sql, params);
    return result.rows[0] ? fromRow(result.rows[0]) : undefined;
  };
  const many = async (sql: string, params: unknown[]) => (await db.query<Row>(sql, params)).rows.map(fromRow);

  const insertValues = (hooks: NewWebhook[]) => {
    const params: unknown[] = [];
    const tuples = hooks.map((hook) => {
      const values = [
        hook.hookId,
        hook.userId,
        hook.calendlyUserUri,
        hook.calendlyOrganizationUri,
        hook.calendlySubscriptionUri ?? null,
        hook.callbackUrl,
        hook.events,
        hook.scope ?? 'user',
        hook.legacy ?? false,
        hook.state,
        hook.signingKeySource,
        hook.signingKeySealed,
        hook.backfillFrom ?? null,
        hook.lastVerifiedAt ?? null,
      ];
      const placeholders = values.map((value) => {
        params.push(value);
        return `$${params.length}`;
      });
      return `(${placeholders.join(', ')})`;
    });
    return {
      sql: `INSERT INTO webhooks (hook_id, user_id, calendly_user_uri, calendly_organization_uri,
        calendly_subscription_uri, callback_url, events, scope, legacy, state, signing_key_source,
        signing_key_sealed, backfill_from, last_verified_at)
        VALUES ${tuples.join(', ')} RETURNING ${columns}`,
      params,
    };
  };

  return {
    findByHookId: (hookId) => one(`SELECT ${columns} FROM webhooks WHERE hook_id = $1`, [hookId]),
    findLegacyByCreator: (uri) => one(`SELECT ${columns} FROM webhooks WHERE legacy AND calendly_user_uri = $1`, [uri]),
    findUserHookByCalendlyUser: (uri) =>
      one(
        `SELECT ${columns} FROM webhooks WHERE calendly_user_uri = $1 AND state <> 'removing' AND creator_connected
         ORDER BY legacy, created_at DESC LIMIT 1`,
        [uri],
      ),
    listByUser: (userId, options = {}) =>
      many(
        `SELECT ${columns} FROM webhooks WHERE user_id = $1 AND creator_connected ${options.includeLegacy ? '' : 'AND NOT legacy'}
         ORDER BY created_at, hook_id`,
        [userId],
      ),
    async listByUsers(userIds) {
      const byUser = new Map<string, WebhookRow[]>();
      if (userIds.length === 0) return byUser;
      const rows = await many(
        `SELECT ${columns} FROM webhooks WHERE user_id = ANY($1::text[]) AND creator_connected
         ORDER BY user_id, created_at, hook_id`,
        [userIds],
      );
      for (const row of rows) {
        const list = byUser.get(row.userId);
        if (list) list.push(row);
        else byUser.set(row.userId, [row]);
      }
      return byUser;
    },
    listLegacy: () => many(`SELECT ${columns} FROM webhooks WHERE legacy ORDER BY created_at, hook_id`, []),
    listPage: (after, limit, filter = {}) =>
      many(
        `SELECT ${columns} FROM webhooks
         WHERE hook_id > $1 AND ($3::text IS NULL OR state = $3) AND ($4::text IS NULL OR user_id = $4)
           AND ($5::text IS NULL OR EXISTS (
             SELECT 1 FROM sync_modes WHERE sync_modes.user_id = webhooks.user_id AND sync_modes.mode = $5))
         ORDER BY hook_id LIMIT $2`,
        [after, limit, filter.state ?? null, filter.userId ?? null, filter.syncMode ?? null],
      ),
    async countByState() {
      const { rows } = await db.query<{ state: WebhookState; count: string }>(
        'SELECT state, count(*) AS count FROM webhooks GROUP BY state',
      );
      return new Map(rows.map((row) => [row.state, Number(row.count)]));
    },
    async insert(hook) {
      const { sql, params } = insertValues([hook]);
      return (await one(sql, params))!;
    },
    async insertMany(hooks) {
      for (let start = 0; start < hooks.length; start += insertBatch) {
        const { sql, params } = insertValues(hooks.slice(start, start + insertBatch));
        await db.query(sql, params);
      }
    },
    async update(hookId, patch) {
      const entries = Object.entries(patch).filter(([, value]) => value !== undefined) as [
        keyof WebhookPatch,
        unknown,
      ][];
      if (entries.length === 0) return;
      const sets = entries.map(([key], index) => `${patchColumns[key]} = $${index + 2}`);
      await db.query(`UPDATE webhooks SET ${sets.join(', ')}, updated_at = now() WHERE hook_id = $1`, [
        hookId,
        ...entries.map(([, value]) => value),
      ]);
    },
    markUserRemoving: (userId) =>
      many(
        `UPDATE webhooks SET state = 'removing', updated_at = now()
          WHERE user_id = $1 AND NOT (legacy AND scope = 'organization') RETURNING ${columns}`,
        [userId],
      ),
    async releaseShared(userId) {
      const result = await db.query(
        `UPDATE webhooks SET creator_connected = false, updated_at = now()
          WHERE user_id = $1 AND legacy AND scope = 'organization' AND creator_connected`,
        [userId],
      );
      return result.rowCount ?? 0;
    },
    async delete(hookIds) {
      if (hookIds.length === 0) return 0;
      const result = await db.query('DELETE FROM webhooks WHERE hook_id = ANY($1::text[])', [hookIds]);
      return result.rowCount ?? 0;
    },
    async recordDeliveries(deliveries) {
      if (deliveries.size === 0) return;
      await db.query(
        `UPDATE webhooks SET last_delivery_at = GREATEST(coalesce(last_delivery_at, d.at), d.at)
         FROM unnest($1::text[], $2::timestamptz[]) AS d(hook_id, at) WHERE webhooks.hook_id = d.hook_id`,
        [[...deliveries.keys()], [...deliveries.values()]],
      );
    },
    async recordRefusals(refusals) {
      if (refusals.size === 0) return;
      const refused = [...refusals.values()];
      await db.query(
        `UPDATE webhooks SET last_refused_at = d.at, last_refusal = d.reason
         FROM unnest($1::text[], $2::timestamptz[], $3::text[]) AS d(hook_id, at, reason)
         WHERE webhooks.hook_id = d.hook_id AND (webhooks.last_refused_at IS NULL OR webhooks.last_refused_at < d.at)`,
        [[...refusals.keys()], refused.map((refusal) => refusal.at), refused.map((refusal) => refusal.reason)],
      );
    },
    async listUserIds(after, limit) {
      const result = await db.query<{ user_id: string }>(
        `SELECT user_id FROM (SELECT user_id FROM webhooks UNION SELECT user_id FROM remote_leftovers
           UNION SELECT user_id FROM sync_modes WHERE mode = 'polling') AS users
         WHERE user_id > $1 ORDER BY user_id LIMIT $2`,
        [after, limit],
      );
      return result.rows.map((row) => row.user_id);
    },
    async usersWithoutActiveHook(limit) {
      const result = await db.query<{ user_id: string }>(
        `SELECT DISTINCT w.user_id FROM webhooks w
         WHERE w.creator_connected AND NOT EXISTS (SELECT 1 FROM webhooks a WHERE a.user_id = w.user_id AND NOT a.legacy AND a.state = 'active')
         ORDER BY w.user_id LIMIT $1`,
        [limit],
      );
      return result.rows.map((row) => row.user_id);
    },
    async addLeftovers(userId, subscriptionUris, error) {
      if (subscriptionUris.length === 0) return;
      await db.query(
        `INSERT INTO remote_leftovers (calendly_subscription_uri, user_id, last_error)
         SELECT uri, $2, $3 FROM unnest($1::text[]) AS uri
         ON CONFLICT (calendly_subscription_uri) DO UPDATE SET last_error = EXCLUDED.last_error`,
        [subscriptionUris, userId, error],
      );
    },
    async usersWithLeftovers(userIds) {
      if (userIds.length === 0) return new Set();
      const result = await db.query<{ user_id: string }>(
        'SELECT DISTINCT user_id FROM remote_leftovers WHERE user_id = ANY($1::text[])',
        [userIds],
      );
      return new Set(result.rows.map((row) => row.user_id));
    },
    async confirmVerified(hooks, at) {
      if (hooks.length === 0) return new Set();
      const result = await db.query<{ hook_id: string }>(
        `UPDATE webhooks w SET state = 'active', calendly_subscription_uri = v.uri, last_verified_at = $3,
           last_error = NULL, down_since = NULL, updated_at = now()
         FROM unnest($1::text[], $2::text[]) AS v(hook_id, uri)
         WHERE w.hook_id = v.hook_id AND w.state = 'active' AND w.backfill_from IS NULL
         RETURNING w.hook_id`,
        [hooks.map((hook) => hook.hookId), hooks.map((hook) => hook.calendlySubscriptionUri), at],
      );
      return new Set(result.rows.map((row) => row.hook_id));
    },
    async listLeftovers(userId) {
      const result = await db.query<{
        calendly_subscription_uri: string;
        user_id: string;
        recorded_at: Date;
        attempts: number;
        last_error: string | null;
      }>(
        `SELECT calendly_subscription_uri, user_id, recorded_at, attempts, last_error FROM remote_leftovers
         WHERE user_id = $1 ORDER BY recorded_at`,
        [userId],
      );
      return result.rows.map((row) => ({
        calendlySubscriptionUri: row.calendly_subscription_uri,
        userId: row.user_id,
        recordedAt: row.recorded_at,
        attempts: row.attempts,
        lastError: row.last_error,
      }));
    },
    async removeLeftover(uri) {
      await db.query('DELETE FROM remote_leftovers WHERE calendly_subscription_uri = $1', [uri]);
    },
    async failLeftover(uri, error) {
      await db.query(
        'UPDATE remote_leftovers SET attempts = attempts + 1, last_error = $2 WHERE calendly_subscription_uri = $1',
        [uri, error],
      );
    },
  };
}
