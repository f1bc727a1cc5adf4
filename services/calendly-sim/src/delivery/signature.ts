import { createHmac } from 'node:crypto';

/** Calendly's `Calendly-Webhook-Signature` value: `t=<unix s>,v1=hex(HMAC-SHA256(key, t + "." + raw body))`. */
export function calendlySignature(signingKey: string, unixSeconds: number, rawBody: string): string {
  const v1 = createHmac('sha256', signingKey).update(`${unixSeconds}.`).update(rawBody).digest('hex');
  return `t=${unixSeconds},v1=${v1}`;
}
