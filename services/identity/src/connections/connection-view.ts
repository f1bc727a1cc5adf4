import type { ConnectionKind, ConnectionRow, ConnectionState } from './connection-repository';

/** A connection as callers see it: no secret. */
export interface Connection {
  userId: string;
  kind: ConnectionKind;
  state: ConnectionState;
  calendlyUserUri: string;
  calendlyOrganizationUri: string;
  scope: string;
  connectedAt: Date;
  updatedAt: Date;
  accessTokenExpiresAt?: Date;
  lastRefreshedAt?: Date;
  /** Why the last refresh that produced no token failed (e.g. invalid_grant, http_503); empty when none did. */
  lastRefreshError: string;
  lastRefreshErrorAt?: Date;
}

export function toConnection(row: ConnectionRow): Connection {
  return {
    userId: row.user_id,
    kind: row.kind,
    state: row.state,
    calendlyUserUri: row.calendly_user_uri,
    calendlyOrganizationUri: row.calendly_organization_uri,
    scope: row.scope,
    connectedAt: row.connected_at,
    updatedAt: row.updated_at,
    accessTokenExpiresAt: row.access_token_expires_at ?? undefined,
    lastRefreshedAt: row.last_refreshed_at ?? undefined,
    lastRefreshError: row.last_refresh_error ?? '',
    lastRefreshErrorAt: row.last_refresh_error_at ?? undefined,
  };
}
