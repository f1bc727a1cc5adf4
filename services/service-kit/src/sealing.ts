import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

const version = 'cs1';
const ivBytes = 12;
const tagBytes = 16;

/** Thrown when a sealed value cannot be opened: unknown key, wrong context or tampering. */
export class SealingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SealingError';
  }
}

/** AES-256-GCM sealing of secrets at rest, with the key id inside every ciphertext. */
export interface Sealer {
  /** Seals with the active key. `context` (e.g. the owning row's id) must be given again to open. */
  seal(plaintext: string, context?: string): string;
  /** Opens with whichever configured key sealed it. */
  open(sealed: string, context?: string): string;
  /** The key id a sealed value was made with. */
  keyIdOf(sealed: string): string;
  /** True when the value was sealed with a key other than the active one. */
  needsReseal(sealed: string): boolean;
  readonly activeKeyId: string;
}

/**
 * Creates a sealer. Several keys may be configured at once: the active one seals, every one
 * opens, so a key is rotated by adding a new active key, re-sealing, then retiring the old.
 */
export function createSealer(options: { keys: ReadonlyMap<string, Buffer>; activeKeyId: string }): Sealer {
  const { keys, activeKeyId } = options;
  for (const [id, key] of keys) {
    if (key.length !== 32) throw new SealingError(`sealing key "${id}" must be 32 bytes`);
    if (!/^[A-Za-z0-9_-]+$/.test(id)) throw new SealingError(`sealing key id "${id}" is not a plain token`);
  }
  const activeKey = keys.get(activeKeyId);
  if (!activeKey) throw new SealingError(`active sealing key "${activeKeyId}" is not configured`);

  const parse = (sealed: string) => {
    const parts = sealed.split(':');
    if (parts.length !== 4 || parts[0] !== version) throw new SealingError('not a sealed value');
    const [, keyId, iv, body] = parts as [string, string, string, string];
    return { keyId, iv: Buffer.from(iv, 'base64url'), body: Buffer.from(body, 'base64url') };
  };
  const aad = (keyId: string, context: string | undefined) => Buffer.from(`${version}:${keyId}:${context ?? ''}`);

  return {
    activeKeyId,
    seal(plaintext, context) {
      const iv = randomBytes(ivBytes);
      const cipher = createCipheriv('aes-256-gcm', activeKey, iv);
      cipher.setAAD(aad(activeKeyId, context));
      const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final(), cipher.getAuthTag()]);
      return [version, activeKeyId, iv.toString('base64url'), body.toString('base64url')].join(':');
    },
    open(sealed, context) {
      const { keyId, iv, body } = parse(sealed);
      const key = keys.get(keyId);
      if (!key) throw new SealingError(`sealed with key "${keyId}", which is not configured`);
      if (iv.length !== ivBytes || body.length < tagBytes) throw new SealingError('sealed value is truncated');
      try {
        const decipher = createDecipheriv('aes-256-gcm', key, iv);
        decipher.setAAD(aad(keyId, context));
        decipher.setAuthTag(body.subarray(body.length - tagBytes));
        return Buffer.concat([decipher.update(body.subarray(0, body.length - tagBytes)), decipher.final()]).toString(
          'utf8',
        );
      } catch {
        throw new SealingError('sealed value failed authentication (tampered, or opened with the wrong context)');
      }
    },
    keyIdOf: (sealed) => parse(sealed).keyId,
    needsReseal: (sealed) => parse(sealed).keyId !== activeKeyId,
  };
}
