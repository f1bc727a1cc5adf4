import { fakeCalendlyAccount, type Delivery as FixtureDelivery } from '../../test/calendly-fixtures';
import { MalformedEventError, parseDelivery, type Delivery } from './calendly-payload';

const cal = fakeCalendlyAccount();

function delivery(fixture: FixtureDelivery, overrides: Partial<Delivery> = {}): Delivery {
  return { deliveryKey: 'k1', userId: 'u1', eventType: fixture.eventType, payload: fixture.body, ...overrides };
}

/** The parts of a webhook body these tests edit. */
interface Body {
  created_at?: string;
  payload: {
    uri?: string;
    name?: string;
    event?: string;
    scheduled_event?: { start_time?: string; end_time?: string };
  };
}

function withBody(fixture: FixtureDelivery, change: (body: Body) => void): Delivery {
  const body = JSON.parse(fixture.body.toString('utf8')) as Body;
  change(body);
  return delivery(fixture, { payload: Buffer.from(JSON.stringify(body)) });
}

const malformed = (input: Delivery) => {
  try {
    parseDelivery(input);
  } catch (error) {
    expect(error).toBeInstanceOf(MalformedEventError);
    return (error as Error).message;
  }
  throw new Error('parsed without complaint');
};

describe('parseDelivery', () => {
  it('keeps Calendly’s microsecond timestamps as text for Postgres to compare exactly', () => {
    const booking = cal.book({ start: '2026-06-01T10:00:00Z' });
    const parsed = parseDelivery(delivery(booking.delivery));
    if (parsed.kind !== 'invitee') throw new Error('expected an invitee change');
    expect(parsed.change.envelopeCreatedAt).toBe(booking.delivery.createdAt);
    expect(parsed.change.envelopeCreatedAt).toMatch(/\.\d{6}Z$/);
    expect(parsed.change.invitee.version).toBe(booking.invitee.updatedAt);
    expect(parsed.change.meeting).toMatchObject({ uri: booking.event.uri, canceled: false, activeInvitees: 1 });
  });

  it('treats invitee.canceled as a cancel and keeps who, why and when', () => {
    const booking = cal.book({ start: '2026-06-01T10:00:00Z', name: 'Kim Cancel' });
    const parsed = parseDelivery(delivery(cal.cancel(booking.invitee, { cancelerType: 'invitee', reason: 'Ill' })));
    if (parsed.kind !== 'invitee') throw new Error('expected an invitee change');
    expect(parsed.change.invitee.canceled).toBe(true);
    expect(parsed.change.invitee.cancellation).toMatchObject({
      canceledBy: 'Kim Cancel',
      reason: 'Ill',
      cancelerType: 'invitee',
    });
    expect(parsed.change.meeting.canceled).toBe(true);
  });

  it('ignores event types that are not about invitees', () => {
    expect(parseDelivery(delivery(cal.eventTypeCreated()))).toEqual({
      kind: 'ignored',
      eventType: 'event_type.created',
    });
  });

  it('refuses what can never be applied, naming the problem', () => {
    const booking = cal.book({ start: '2026-06-01T10:00:00Z' }).delivery;
    expect(malformed(delivery(booking, { userId: '' }))).toMatch(/user_id/);
    expect(malformed(delivery(booking, { deliveryKey: '' }))).toMatch(/delivery_key/);
    expect(malformed(delivery(booking, { payload: Buffer.from('<html>') }))).toBe('payload is not JSON');
    expect(malformed(delivery(booking, { eventType: 'invitee.canceled' }))).toMatch(/contradicts/);
    expect(malformed(withBody(booking, (body) => delete body.payload.scheduled_event))).toMatch(
      /payload\.scheduled_event/,
    );
    expect(malformed(withBody(booking, (body) => (body.payload.scheduled_event!.start_time = 'tomorrow')))).toMatch(
      /start_time: is not an ISO 8601 timestamp/,
    );
    expect(
      malformed(withBody(booking, (body) => (body.payload.scheduled_event!.end_time = '2026-05-01T00:00:00Z'))),
    ).toMatch(/ends before it starts/);
    expect(malformed(withBody(booking, (body) => (body.payload.event = 'https://api.calendly.com/other')))).toMatch(
      /different events/,
    );
    expect(malformed(withBody(booking, (body) => (body.payload.name = 'nul\u0000byte')))).toMatch(/NUL/);
    expect(malformed(withBody(booking, (body) => (body.payload.uri = 'javascript:alert(1)')))).toMatch(/http/);
    expect(
      malformed(
        withBody(booking, (body) => {
          delete body.created_at;
        }),
      ),
    ).toMatch(/no created_at/);
  });

  it('falls back to the gateway’s created_at when the body has none', () => {
    const booking = cal.book({ start: '2026-06-01T10:00:00Z' }).delivery;
    const input = withBody(booking, (body) => delete body.created_at);
    const parsed = parseDelivery({ ...input, calendlyCreatedAt: new Date('2026-05-01T09:00:00Z') });
    if (parsed.kind !== 'invitee') throw new Error('expected an invitee change');
    expect(parsed.change.envelopeCreatedAt).toBe('2026-05-01T09:00:00.000Z');
  });
});
