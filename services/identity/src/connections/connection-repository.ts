import type { Pool, PoolClient } from '@calsync/service-kit';

type Db = Pool | PoolClient;

export type ConnectionKind = 'oauth' | 'personal_token';
export type ConnectionState = 'active' | 'reauth_required';

export const connectionKinds: readonly ConnectionKind[] = ['oauth', 'personal_token'];
export const connectionStates: readonly ConnectionState[] = ['active', 'reauth_required'];

/** A `connections` row as stored: the token columns are sealed. */
export interface ConnectionRow {
  user_id: string;
  kind: ConnectionKind;
  state: ConnectionState;
  calendly_user_uri: string;
  calendly_organization_uri: string;
  scope: string;
  access_token_sealed: string;
  refresh_token_sealed: string | null;
  access_token_issued_at: Date | null;
  access_token_expires_at: Date | null;
  reauth_reason: string | null;
  connected_at: Date;
  updated_at: Date;
  last_refreshed_at: Date | null;
  /** The reason of the last refresh that produced no token (the metrics' refresh failure reasons), never a secret. */
  last_refresh_error: string | null;
  last_refresh_error_at: Date | null;
}

/** What a (re)connect writes; the tokens already sealed. */
export interface NewConnection {
  userId: string;
  kind: ConnectionKind;
  calendlyUserUri: string;
  calendlyOrganizationUri: string;
  scope: string;
  accessTokenSealed: string;
  refreshTokenSealed: string | null;
  accessTokenIssuedAt: Date | null;
  accessTokenExpiresAt: Date | null;
}

/** Postgres' unique_violation, raised when another user already holds the Calendly account. */
export function isCalendlyAccountTaken(error: unknown): boolean {
  const pgError = error as { code?: string; constraint?: string } | undefined;
  return pgError?.code === '23505' && pgError.constraint === 'connections_calendly_user_uri_key';
}

/** Postgres' lock_not_available, raised when `lock_timeout` passes while waiting for a row lock. */
export function isLockTimeout(error: unknown): boolean {
  return (error as { code?: string } | undefined)?.code === '55P03';
}

export async function findConnection(db: Db, userId: string): Promise<ConnectionRow | undefined> {
  const result = await db.query<ConnectionRow>('SELECT * FROM connections WHERE user_id = $1', [userId]);
  return result.rows[0];
}

/** findConnection for many users in one query, by user (users without a connection are absent). */
export async function findConnections(db: Db, userIds: string[]): Promise<Map<string, ConnectionRow>> {
  const result = await db.query<ConnectionRow>('SELECT * FROM connections WHERE user_id = ANY($1::text[])', [userIds]);
  return new Map(result.rows.map((row) => [row.user_id, row]));
}

/** Reads the row and holds its lock until the transaction ends, so only one replica refreshes it. */
export async function lockConnection(client: PoolClient, userId: string): Promise<ConnectionRow | undefined> {
  const result = await client.query<ConnectionRow>('SELECT * FROM connections WHERE user_id = $1 FOR UPDATE', [userId]);
  return result.rows[0];
}

/** The platform user holding this Calendly account, if any. */
export async function findUserIdByCalendlyUser(db: Db, calendlyUserUri: string): Promise<string | undefined> {
  const result = await db.query<{ user_id: string }>('SELECT user_id FROM connections WHERE calendly_user_uri = $1', [
    calendlyUserUri,
  ]);
  return result.rows[0]?.user_id;
}

/** Inserts the user's connection or replaces it whole: a reconnect starts afresh. */
export async function upsertConnection(client: PoolClient, connection: NewConnection): Promise<ConnectionRow> {
  const result = await client.query<ConnectionRow>(
    `INSERT INTO connections (user_id, kind, state, calendly_user_uri, calendly_organization_uri, scope,
       access_token_sealed, refresh_token_sealed, access_token_issued_at, access_token_expires_at,
       reauth_reason, connected_at, updated_at, last_refreshed_at, last_refresh_error, last_refresh_error_at)
     VALUES ($1, $2, 'active', $3, $4, $5, $6, $7, $8, $9, NULL, now(), now(), NULL, NULL, NULL)
     ON CONFLICT (user_id) DO UPDATE SET
       kind = EXCLUDED.kind, state = 'active', calendly_user_uri = EXCLUDED.calendly_user_uri,
       calendly_organization_uri = EXCLUDED.calendly_organization_uri, scope = EXCLUDED.scope,
       access_token_sealed = EXCLUDED.access_token_sealed, refresh_token_sealed = EXCLUDED.refresh_token_sealed,
       access_token_issued_at = EXCLUDED.access_token_issued_at,
       access_token_expires_at = EXCLUDED.access_token_expires_at,
       reauth_reason = NULL, connected_at = now(), updated_at = now(),
       last_refreshed_at = NULL, last_refresh_error = NULL, last_refresh_error_at = NULL
     RETURNING *`,
    [
      connection.userId,
      connection.kind,
      connection.calendlyUserUri,
      connection.calendlyOrganizationUri,
      connection.scope,
      connection.accessTokenSealed,
      connection.refreshTokenSealed,
      connection.accessTokenIssuedAt,
      connection.accessTokenExpiresAt,
    ],
  );
  return result.rows[0]!;
}

/** Stores a refresh's outcome: the new access token and the rotated refresh token together. */
export async function updateRefreshedTokens(
  client: PoolClient,
  update: {
    userId: string;
    accessTokenSealed: string;
    refreshTokenSealed: string;
    scope: string;
    issuedAt: Date;
    expiresAt: Date;
  },
): Promise<ConnectionRow> {
  const result = await client.query<ConnectionRow>(
    `UPDATE connections SET access_token_sealed = $2, refresh_token_sealed = $3, scope = $4,
       access_token_issued_at = $5, access_token_expires_at = $6, updated_at = now(), last_refreshed_at = now()
     WHERE user_id = $1 RETURNING *`,
    [
      update.userId,
      update.accessTokenSealed,
      update.refreshTokenSealed,
      update.scope,
      update.issuedAt,
      update.expiresAt,
    ],
  );
  return result.rows[0]!;
}

export async function markReauthRequired(client: PoolClient, userId: string, reason: string): Promise<ConnectionRow> {
  const result = await client.query<ConnectionRow>(
    `UPDATE connections SET state = 'reauth_required', reauth_reason = $2, updated_at = now()
     WHERE user_id = $1 RETURNING *`,
    [userId, reason],
  );
  return result.rows[0]!;
}

/** Records why a refresh produced no token (a reason as the metrics name it, never a secret), and when. */
export async function recordRefreshFailure(db: Db, userId: string, reason: string): Promise<void> {
  await db.query('UPDATE connections SET last_refresh_error = $2, last_refresh_error_at = now() WHERE user_id = $1', [
    userId,
    reason,
  ]);
}

/** Deletes the user's connection, returning what it held (to revoke it), or undefined. */
export async function deleteConnection(db: Db, userId: string): Promise<ConnectionRow | undefined> {
  const result = await db.query<ConnectionRow>('DELETE FROM connections WHERE user_id = $1 RETURNING *', [userId]);
  return result.rows[0];
}

/** Every user's connection in user id order after `after`, optionally only one state's: the operators' view. */
export async function listConnectionsPage(
  db: Db,
  after: string,
  limit: number,
  filter: { state?: ConnectionState } = {},
): Promise<ConnectionRow[]> {
  const result = await db.query<ConnectionRow>(
    `SELECT * FROM connections WHERE user_id > $1 AND ($3::text IS NULL OR state = $3)
     ORDER BY user_id LIMIT $2`,
    [after, limit, filter.state ?? null],
  );
  return result.rows;
}

/** Connections by kind and state, for the metrics gauge. */
export async function countConnections(
  db: Db,
): Promise<{ kind: ConnectionKind; state: ConnectionState; count: number }[]> {
  const result = await db.query<{ kind: ConnectionKind; state: ConnectionState; count: string }>(
    'SELECT kind, state, count(*) AS count FROM connections GROUP BY kind, state',
  );
  return result.rows.map((row) => ({ kind: row.kind, state: row.state, count: Number(row.count) }));
}
