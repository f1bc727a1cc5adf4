import { invalidInput as invalid } from '../errors';

// Request checks shared by every operation: each bad input is refused with a message naming the
// field, and never echoes a secret back.

// eslint-disable-next-line no-control-regex
const controlCharacters = /[\u0000-\u001f\u007f]/;

export function requireText(field: string, value: string, maxLength: number): string {
  if (value.length === 0) throw invalid(`${field} is required`);
  if (value.length > maxLength) throw invalid(`${field} must be at most ${maxLength} characters`);
  if (controlCharacters.test(value)) throw invalid(`${field} must not contain control characters`);
  return value;
}

export const requireUserId = (value: string): string => requireText('user_id', value, 200);

/** An absolute http(s) URL without a fragment, as OAuth requires of redirect URIs. */
export function requireRedirectUri(value: string): string {
  requireText('redirect_uri', value, 2048);
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw invalid('redirect_uri must be an absolute URL');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw invalid('redirect_uri must be an http(s) URL');
  if (url.hash) throw invalid('redirect_uri must not have a fragment');
  return value;
}

/** A personal access token as pasted: one word, no spaces. */
export function requirePersonalToken(value: string): string {
  if (value.length === 0) throw invalid('token is required');
  if (value.length > 8192) throw invalid('token must be at most 8192 characters');
  if (/\s/.test(value) || controlCharacters.test(value))
    throw invalid('token must be a Calendly personal access token (one word, without spaces)');
  return value;
}

/** 0 means the configured default; more than an access token's two-hour life can never be satisfied. */
export function requireMinValidity(value: number, fallback: number): number {
  if (!Number.isInteger(value) || value < 0 || value > 7200)
    throw invalid('min_validity_seconds must be between 0 and 7200');
  return value === 0 ? fallback : value;
}
