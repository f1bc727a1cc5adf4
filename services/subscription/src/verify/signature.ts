import { createHmac, timingSafeEqual } from 'node:crypto';

/** A Calendly-Webhook-Signature header taken apart. */
export interface ParsedSignature {
  /** The `t` value exactly as sent: the HMAC covers this text, not a re-formatted number. */
  timestampText: string;
  timestamp: number;
  /** Every `v1` value, decoded (32 bytes each). */
  signatures: Buffer[];
}

/** More `v1` values than any key rotation needs; a longer list is refused rather than hashed against. */
const maxSignatures = 8;
const timestampPattern = /^[1-9][0-9]{0,11}$/;
const signaturePattern = /^[0-9a-f]{64}$/;

/**
 * Parses `t=<unix seconds>,v1=<64 lowercase hex>[,v1=...]` strictly: exactly one `t`, first; at
 * least one `v1`; nothing else, no spaces, no empty parts. Returns undefined when it is not that.
 */
export function parseSignatureHeader(header: string): ParsedSignature | undefined {
  if (header.length > 1_024) return undefined;
  const parts = header.split(',');
  if (parts.length < 2 || parts.length > maxSignatures + 1) return undefined;
  const [first, ...rest] = parts as [string, ...string[]];
  if (!first.startsWith('t=')) return undefined;
  const timestampText = first.slice(2);
  if (!timestampPattern.test(timestampText)) return undefined;
  const signatures: Buffer[] = [];
  for (const part of rest) {
    if (!part.startsWith('v1=')) return undefined;
    const hex = part.slice(3);
    if (!signaturePattern.test(hex)) return undefined;
    signatures.push(Buffer.from(hex, 'hex'));
  }
  return { timestampText, timestamp: Number(timestampText), signatures };
}

/** Calendly's signature: HMAC-SHA256 over `t + "." + raw body`, keyed with the signing key's text. */
export function computeSignature(signingKey: string | Buffer, timestampText: string, rawBody: Buffer): Buffer {
  return createHmac('sha256', signingKey).update(timestampText).update('.').update(rawBody).digest();
}

/**
 * True when any of the header's signatures is the right one. Each comparison is constant-time
 * and every candidate is compared, so timing says nothing about which byte or which value differed.
 */
export function signatureMatches(signingKey: string | Buffer, parsed: ParsedSignature, rawBody: Buffer): boolean {
  const expected = computeSignature(signingKey, parsed.timestampText, rawBody);
  let matched = false;
  for (const candidate of parsed.signatures) {
    if (timingSafeEqual(expected, candidate)) matched = true;
  }
  return matched;
}

/** A header value as Calendly would send it, for tests, tools and the benchmark. */
export function signatureHeaderFor(signingKey: string | Buffer, timestamp: number, rawBody: Buffer | string): string {
  const body = typeof rawBody === 'string' ? Buffer.from(rawBody) : rawBody;
  return `t=${timestamp},v1=${computeSignature(signingKey, String(timestamp), body).toString('hex')}`;
}
