import { belongsTo, creatorOf, deliveryKeyOf, parseEnvelope } from './payload';

const alice = 'https://api.calendly.com/users/ALICE';
const bob = 'https://api.calendly.com/users/BOB';

function envelope(overrides: Record<string, unknown> = {}, payload: Record<string, unknown> = {}) {
  return Buffer.from(
    JSON.stringify({
      event: 'invitee.created',
      created_at: '2026-05-01T10:00:00.000000Z',
      created_by: alice,
      payload: {
        uri: 'https://api.calendly.com/scheduled_events/E1/invitees/I1',
        no_show: null,
        scheduled_event: { uri: 'https://api.calendly.com/scheduled_events/E1', event_memberships: [{ user: alice }] },
        ...payload,
      },
      ...overrides,
    }),
  );
}

describe('parseEnvelope', () => {
  it('reads the event, the invitee and the hosts', () => {
    expect(parseEnvelope(envelope())).toMatchObject({
      event: 'invitee.created',
      createdBy: alice,
      subjectUri: 'https://api.calendly.com/scheduled_events/E1/invitees/I1',
      memberUris: [alice],
    });
  });

  it('uses the no-show URI for no-show events', () => {
    const parsed = parseEnvelope(
      envelope({ event: 'invitee_no_show.created' }, { no_show: { uri: 'https://x/no_shows/N1', created_at: 'x' } }),
    );
    expect(parsed!.subjectUri).toBe('https://x/no_shows/N1');
  });

  it.each([
    ['not JSON', Buffer.from('event=invitee.created')],
    ['an array', Buffer.from('[]')],
    ['no event', envelope({ event: undefined })],
    ['no payload', envelope({ payload: undefined })],
    ['a bad created_at', envelope({ created_at: 'yesterday' })],
    ['no invitee uri', envelope({}, { uri: undefined })],
  ])('refuses %s', (_name, body) => {
    expect(parseEnvelope(body)).toBeUndefined();
  });
});

describe('belongsTo', () => {
  it('accepts the subscription creator or an event host, and nobody else', () => {
    expect(belongsTo(parseEnvelope(envelope())!, alice)).toBe(true);
    const hostedByBob = parseEnvelope(envelope({}, { scheduled_event: { event_memberships: [{ user: bob }] } }))!;
    expect(belongsTo(hostedByBob, bob)).toBe(true);
    expect(belongsTo(parseEnvelope(envelope())!, bob)).toBe(false);
  });
});

describe('deliveryKeyOf', () => {
  it('is stable for a retry and differs by event, invitee, time and user', () => {
    const base = deliveryKeyOf('u1', parseEnvelope(envelope())!);
    expect(deliveryKeyOf('u1', parseEnvelope(envelope())!)).toBe(base);
    expect(deliveryKeyOf('u2', parseEnvelope(envelope())!)).not.toBe(base);
    expect(deliveryKeyOf('u1', parseEnvelope(envelope({ event: 'invitee.canceled' }))!)).not.toBe(base);
    expect(deliveryKeyOf('u1', parseEnvelope(envelope({ created_at: '2026-05-01T10:00:01Z' }))!)).not.toBe(base);
    expect(deliveryKeyOf('u1', parseEnvelope(envelope({}, { uri: 'https://x/invitees/I2' }))!)).not.toBe(base);
  });
});

describe('creatorOf', () => {
  it('reads created_by without trusting anything else', () => {
    expect(creatorOf(envelope())).toBe(alice);
    expect(creatorOf(Buffer.from('nope'))).toBeUndefined();
    expect(creatorOf(envelope({ created_by: 5 }))).toBeUndefined();
  });
});
