import { randomBytes } from 'node:crypto';
import { createSealer, type Sealer } from '../sealing';

/** A key rotation's two sides: `before` seals with key "old"; `after` opens "old" and "new" and seals with "new". */
export function rotationSealers(): { before: Sealer; after: Sealer } {
  const oldKey = randomBytes(32);
  const newKey = randomBytes(32);
  return {
    before: createSealer({ keys: new Map([['old', oldKey]]), activeKeyId: 'old' }),
    after: createSealer({
      keys: new Map([
        ['old', oldKey],
        ['new', newKey],
      ]),
      activeKeyId: 'new',
    }),
  };
}
