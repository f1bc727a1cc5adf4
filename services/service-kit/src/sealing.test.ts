import { randomBytes } from 'node:crypto';
import { createSealer, SealingError } from './sealing';

const oldKey = randomBytes(32);
const newKey = randomBytes(32);

describe('sealing', () => {
  it('round-trips and never contains the plaintext', () => {
    const sealer = createSealer({ keys: new Map([['k1', oldKey]]), activeKeyId: 'k1' });
    const sealed = sealer.seal('refresh-token-value', 'user-1');
    expect(sealed).not.toContain('refresh-token-value');
    expect(sealer.open(sealed, 'user-1')).toBe('refresh-token-value');
    expect(sealer.keyIdOf(sealed)).toBe('k1');
  });

  it('seals the same value differently each time', () => {
    const sealer = createSealer({ keys: new Map([['k1', oldKey]]), activeKeyId: 'k1' });
    expect(sealer.seal('x')).not.toBe(sealer.seal('x'));
  });

  it('rejects a tampered ciphertext', () => {
    const sealer = createSealer({ keys: new Map([['k1', oldKey]]), activeKeyId: 'k1' });
    const [version, keyId, iv, body] = sealer.seal('secret', 'user-1').split(':') as [string, string, string, string];
    const bytes = Buffer.from(body, 'base64url');
    bytes[0] = bytes[0]! ^ 0xff;
    const tampered = [version, keyId, iv, bytes.toString('base64url')].join(':');
    expect(() => sealer.open(tampered, 'user-1')).toThrow(SealingError);
  });

  it('rejects a ciphertext moved to another row (context mismatch)', () => {
    const sealer = createSealer({ keys: new Map([['k1', oldKey]]), activeKeyId: 'k1' });
    expect(() => sealer.open(sealer.seal('secret', 'user-1'), 'user-2')).toThrow(/failed authentication/);
  });

  it('opens with a retired key while the new key seals', () => {
    const before = createSealer({ keys: new Map([['old', oldKey]]), activeKeyId: 'old' });
    const sealedBefore = before.seal('secret', 'ctx');
    const after = createSealer({
      keys: new Map([
        ['old', oldKey],
        ['new', newKey],
      ]),
      activeKeyId: 'new',
    });
    expect(after.open(sealedBefore, 'ctx')).toBe('secret');
    expect(after.needsReseal(sealedBefore)).toBe(true);
    const resealed = after.seal(after.open(sealedBefore, 'ctx'), 'ctx');
    expect(after.keyIdOf(resealed)).toBe('new');
    expect(after.needsReseal(resealed)).toBe(false);
  });

  it('names the missing key when a ciphertext was sealed with a key no longer configured', () => {
    const before = createSealer({ keys: new Map([['old', oldKey]]), activeKeyId: 'old' });
    const onlyNew = createSealer({ keys: new Map([['new', newKey]]), activeKeyId: 'new' });
    expect(() => onlyNew.open(before.seal('secret'))).toThrow(/key "old", which is not configured/);
  });

  it('refuses keys that are not 32 bytes and an unknown active key', () => {
    expect(() => createSealer({ keys: new Map([['k', randomBytes(16)]]), activeKeyId: 'k' })).toThrow(/32 bytes/);
    expect(() => createSealer({ keys: new Map([['k', oldKey]]), activeKeyId: 'other' })).toThrow(/not configured/);
  });
});
