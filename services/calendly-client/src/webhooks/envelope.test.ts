import { inviteeCreatedBody } from '../testing';
import { coversSubscribedEvents, subscribedEvents, webhookEventsByScope } from './events';
import { creatorOf, deliveryKeyOf, parseInviteePayload, parseWebhookEnvelope, type WebhookEnvelope } from './envelope';

const alice = 'https://api.calendly.com/users/ALICE';

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

function read(body: Buffer, options?: { createdAtFallback?: Date }): WebhookEnvelope {
  const result = parseWebhookEnvelope(body, options);
  if (!result.ok) throw new Error(result.detail);
  return result.envelope;
}

describe('parseWebhookEnvelope', () => {
  it('reads the event, the invitee and the hosts', () => {
    expect(read(envelope())).toMatchObject({
      event: 'invitee.created',
      createdAtText: '2026-05-01T10:00:00.000000Z',
      createdBy: alice,
      subjectUri: 'https://api.calendly.com/scheduled_events/E1/invitees/I1',
      hostUris: [alice],
    });
  });

  it('uses the no-show URI for no-show events', () => {
    const parsed = read(
      envelope({ event: 'invitee_no_show.created' }, { no_show: { uri: 'https://x/no_shows/N1', created_at: 'x' } }),
    );
    expect(parsed.subjectUri).toBe('https://x/no_shows/N1');
  });

  it('takes created_at from the reader only when it offers one', () => {
    const body = envelope({ created_at: undefined });
    expect(parseWebhookEnvelope(body)).toMatchObject({ ok: false, detail: /no created_at/ });
    expect(read(body, { createdAtFallback: new Date('2026-05-01T09:00:00Z') }).createdAtText).toBe(
      '2026-05-01T09:00:00.000Z',
    );
  });

  it.each([
    ['not JSON', Buffer.from('event=invitee.created'), 'not_json'],
    ['an array', Buffer.from('[]'), 'not_envelope'],
    ['no event', envelope({ event: undefined }), 'not_envelope'],
    ['an empty event', envelope({ event: '' }), 'not_envelope'],
    ['no payload', envelope({ payload: undefined }), 'not_envelope'],
    ['a bad created_at', envelope({ created_at: 'yesterday' }), 'not_envelope'],
    ['no invitee uri', envelope({}, { uri: undefined }), 'not_envelope'],
    ['an invitee uri that is not a URL', envelope({}, { uri: 'x' }), 'not_envelope'],
    ['a NUL in the event', envelope({ event: 'invitee.created\u0000' }), 'not_envelope'],
  ])('refuses %s', (_name, body, problem) => {
    expect(parseWebhookEnvelope(body)).toMatchObject({ ok: false, problem });
  });
});

describe('parseInviteePayload', () => {
  it('reads a Calendly-shaped invitee payload', () => {
    const body = inviteeCreatedBody({ uri: alice, email: 'alice@example.test', name: 'Alice' });
    const result = parseInviteePayload(read(body).payload);
    expect(result).toMatchObject({ ok: true, invitee: { scheduled_event: { event_memberships: [{ user: alice }] } } });
  });

  it('refuses an event that ends before it starts, naming the field', () => {
    const body = JSON.parse(inviteeCreatedBody({ uri: alice, email: 'a@example.test', name: 'A' }).toString()) as {
      payload: { scheduled_event: { end_time: string } };
    };
    body.payload.scheduled_event.end_time = '2000-01-01T00:00:00Z';
    expect(parseInviteePayload(body.payload)).toEqual({ ok: false, detail: expect.stringMatching(/ends before/) });
  });
});

describe('deliveryKeyOf', () => {
  it('is stable for a retry and differs by event, invitee, time and user', () => {
    const base = deliveryKeyOf('u1', read(envelope()));
    expect(deliveryKeyOf('u1', read(envelope()))).toBe(base);
    expect(deliveryKeyOf('u2', read(envelope()))).not.toBe(base);
    expect(deliveryKeyOf('u1', read(envelope({ event: 'invitee.canceled' })))).not.toBe(base);
    expect(deliveryKeyOf('u1', read(envelope({ created_at: '2026-05-01T10:00:01Z' })))).not.toBe(base);
    expect(deliveryKeyOf('u1', read(envelope({}, { uri: 'https://x/invitees/I2' })))).not.toBe(base);
  });
});

describe('creatorOf', () => {
  it('reads created_by without trusting anything else', () => {
    expect(creatorOf(envelope())).toBe(alice);
    expect(creatorOf(Buffer.from('nope'))).toBeUndefined();
    expect(creatorOf(envelope({ created_by: 5 }))).toBeUndefined();
  });
});

describe('events', () => {
  it('subscribes only to events Calendly allows in user scope', () => {
    for (const event of subscribedEvents) expect(webhookEventsByScope.user).toContain(event);
  });

  it('tells a hook that misses a subscribed event from one that has them all', () => {
    expect(coversSubscribedEvents(subscribedEvents)).toBe(true);
    expect(coversSubscribedEvents(['invitee.created', 'invitee.canceled'])).toBe(false);
  });
});
