import * as eventsV1 from '../gen/calsync/events/v1/events';
import { reusingEncoder } from './encoding';

describe('reusingEncoder', () => {
  it('encodes each message as a fresh encoder would, into a copy of its own', () => {
    const encode = reusingEncoder(eventsV1.CalendlyEvent);
    const event = (payloadBytes: number, userId: string): eventsV1.CalendlyEvent => ({
      ...eventsV1.CalendlyEvent.fromPartial({ deliveryKey: `key-${userId}`, userId, eventType: 'invitee.created' }),
      payload: Buffer.alloc(payloadBytes, userId),
    });
    const large = encode(event(4096, 'a'));
    const small = encode(event(10, 'b'));
    expect(Buffer.from(large)).toEqual(Buffer.from(eventsV1.CalendlyEvent.encode(event(4096, 'a')).finish()));
    expect(Buffer.from(small)).toEqual(Buffer.from(eventsV1.CalendlyEvent.encode(event(10, 'b')).finish()));
    // The second message did not write into the first one's bytes.
    expect(eventsV1.CalendlyEvent.decode(large).userId).toBe('a');
    expect(Buffer.from(eventsV1.CalendlyEvent.decode(large).payload)).toEqual(Buffer.alloc(4096, 'a'));
  });

  it('starts the next message clean after one that could not be encoded', () => {
    const encode = reusingEncoder(eventsV1.CalendlyEvent);
    const valid = eventsV1.CalendlyEvent.fromPartial({ deliveryKey: 'key-ok', userId: 'ok' });
    const invalid = { ...eventsV1.CalendlyEvent.fromPartial({ deliveryKey: 'key-bad', userId: 'bad' }) };
    invalid.calendlyCreatedAt = new Date(Number.NaN);
    expect(() => encode(invalid)).toThrow();
    expect(Buffer.from(encode(valid))).toEqual(Buffer.from(eventsV1.CalendlyEvent.encode(valid).finish()));
  });
});
