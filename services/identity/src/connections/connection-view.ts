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
  };
}
