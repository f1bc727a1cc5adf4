import { createHash, randomBytes } from 'node:crypto';
import type { Pool, PoolClient } from '@calsync/service-kit';

type Db = Pool | PoolClient;

/** An `oauth_states` row: a pending connect, its PKCE verifier sealed. */
export interface OAuthStateRow {
  state_hash: string;
  user_id: string;
  redirect_uri: string;
  code_verifier_sealed: string;
  created_at: Date;
  expires_at: Date;
}

/** A fresh unguessable value (256 bits): the OAuth state, or the PKCE verifier (43 characters, RFC 7636). */
export const randomSecret = (): string => randomBytes(32).toString('base64url');

/** The PKCE S256 challenge of a verifier. */
export const pkceChallenge = (verifier: string): string => createHash('sha256').update(verifier).digest('base64url');

/** States are bearer secrets: only their hash is stored, so a database reader cannot finish a connect. */
export const hashState = (state: string): string => createHash('sha256').update(state).digest('hex');

export async function insertOAuthState(
  db: Db,
  state: { stateHash: string; userId: string; redirectUri: string; codeVerifierSealed: string; expiresAt: Date },
): Promise<void> {
  await db.query(
    `INSERT INTO oauth_states (state_hash, user_id, redirect_uri, code_verifier_sealed, expires_at)
     VALUES ($1, $2, $3, $4, $5)`,
    [state.stateHash, state.userId, state.redirectUri, state.codeVerifierSealed, state.expiresAt],
  );
}

/** Deletes and returns the state in one statement: of two concurrent uses, exactly one gets it. */
export async function consumeOAuthState(db: Db, stateHash: string): Promise<OAuthStateRow | undefined> {
  const result = await db.query<OAuthStateRow>('DELETE FROM oauth_states WHERE state_hash = $1 RETURNING *', [
    stateHash,
  ]);
  return result.rows[0];
}

export async function pruneExpiredOAuthStates(db: Db): Promise<number> {
  const result = await db.query('DELETE FROM oauth_states WHERE expires_at < now()');
  return result.rowCount ?? 0;
}
