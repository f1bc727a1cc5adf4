/** The secret columns identity seals. */
export type SecretColumn = 'access_token' | 'refresh_token' | 'code_verifier';

/**
 * The Sealer context of a secret: its column and the owning user id, so a sealed value copied
 * into another user's row, or from one column into another, fails to open.
 */
export function secretContext(column: SecretColumn, userId: string): string {
  return `identity/${column}/${userId}`;
}
