import { startGatewaySystem, waitFor, type GatewaySystem, type SimUser } from './harness';

let system: GatewaySystem;
let alice: SimUser;
let bob: SimUser;

beforeAll(async () => {
  system = await startGatewaySystem('gwevents');
  alice = await system.connectWithToken('user-alice');
  bob = await system.connectWithToken('user-bob');
}, 120_000);

afterAll(async () => {
  await system?.stop();
});

interface ServerSentEvent {
  id?: string;
  event: string;
  data: string;
}

/** An EventSource as a browser runs it, minus the automatic reconnect (the test reconnects itself). */
async function openStream(url: string, headers: Record<string, string> = {}) {
  const cancel = new AbortController();
  const response = await fetch(url, { headers: { accept: 'text/event-stream', ...headers }, signal: cancel.signal });
  const events: ServerSentEvent[] = [];
  const reading = (async () => {
    if (!response.ok || !response.body) return;
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for await (const chunk of response.body) {
        buffer += decoder.decode(chunk as Uint8Array, { stream: true });
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const event: ServerSentEvent = { event: 'message', data: '' };
          let hasData = false;
          for (const line of block.split('\n')) {
            const colon = line.indexOf(':');
            if (colon === 0) continue;
            const field = colon < 0 ? line : line.slice(0, colon);
            const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
            if (field === 'id') event.id = value;
            else if (field === 'event') event.event = value;
            else if (field === 'data') {
              event.data += (hasData ? '\n' : '') + value;
              hasData = true;
            }
          }
          if (hasData) events.push(event);
        }
      }
    } catch {
      // aborted by close()
    }
  })();
  return {
    response,
    events,
    changes: () => events.filter((event) => event.event === 'meeting.changed'),
    async close() {
      cancel.abort();
      await reading;
    },
  };
}

async function streamToken(userId: string): Promise<string> {
  const answer = await system.api('/api/meetings/events/token', { userId, method: 'POST' });
  expect(answer.status).toBe(201);
  return answer.body.token as string;
}

const eventsUrl = (token: string, extra = '') =>
  `${system.url}/api/meetings/events?token=${encodeURIComponent(token)}${extra}`;

describe('GET /api/meetings/events', () => {
  it("streams the user's own changes and, reconnected with Last-Event-ID, misses none and repeats none", async () => {
    const token = await streamToken('user-alice');
    const first = await openStream(eventsUrl(token));
    expect(first.response.status).toBe(200);
    expect(first.response.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const bobStream = await openStream(eventsUrl(await streamToken('user-bob')));

    const one = await system.book(alice, 1);
    await system.book(bob, 2);
    await waitFor(() => first.changes().length >= 1, { what: "alice's first change" });
    await waitFor(() => bobStream.changes().length >= 1, { what: "bob's change" });
    await first.close();
    const lastId = first.changes().at(-1)!.id!;

    // Changes while the page is away (a dropped connection, a laptop lid).
    const two = await system.book(alice, 3);
    await system.simCall('/_sim/invitees/cancel', { invitee: one.invitee.uri, reason: 'moved on' });
    await system.book(bob, 4);

    // EventSource reconnects with Last-Event-ID; the token may be reused while it is valid.
    const again = await openStream(eventsUrl(token), { 'last-event-id': lastId });
    await waitFor(() => again.changes().length >= 2, { what: 'the two missed changes' });
    const three = await system.book(alice, 5);
    await waitFor(() => again.changes().length >= 3, { what: 'the live change after them' });
    await waitFor(() => bobStream.changes().length >= 2, { what: "bob's second change" });
    await again.close();
    await bobStream.close();

    const seen = [...first.changes(), ...again.changes()].map(
      (event) =>
        JSON.parse(event.data) as { kind: string; scheduledEventUri: string; changeId: string; meeting: unknown },
    );
    expect(seen.map((change) => [change.kind, change.scheduledEventUri])).toEqual([
      ['created', one.scheduled_event.uri],
      ['created', two.scheduled_event.uri],
      ['canceled', one.scheduled_event.uri],
      ['created', three.scheduled_event.uri],
    ]);
    expect(new Set(seen.map((change) => change.changeId)).size).toBe(4);
    expect(seen[2]!.meeting).toMatchObject({ status: 'canceled' });
    // Bob's stream had only Bob's meetings; Alice's only hers.
    const bobs = bobStream
      .changes()
      .map((event) => (JSON.parse(event.data) as { meeting: { scheduledEventUri: string } }).meeting);
    expect(bobs).toHaveLength(2);
    for (const meeting of bobs)
      expect(seen.map((change) => change.scheduledEventUri)).not.toContain(meeting.scheduledEventUri);
    // A page that opens a new EventSource passes the id as a parameter instead.
    const fromParam = await openStream(
      eventsUrl(await streamToken('user-alice'), `&lastEventId=${encodeURIComponent(lastId)}`),
    );
    await waitFor(() => fromParam.changes().length >= 3, { what: 'the changes after the id' });
    await fromParam.close();
  });

  it('tells the page to re-list when it cannot resume from the id it was given', async () => {
    const stream = await openStream(eventsUrl(await streamToken('user-alice')), {
      'last-event-id': 'c1.1.000000000000',
    });
    await waitFor(() => stream.events.some((event) => event.event === 'resync'), { what: 'a resync event' });
    const live = await system.book(alice, 6);
    await waitFor(() => stream.changes().length >= 1, { what: 'the stream to go on live' });
    await stream.close();
    expect(JSON.parse(stream.changes()[0]!.data)).toMatchObject({ scheduledEventUri: live.scheduled_event.uri });
    expect(JSON.parse(stream.events.find((event) => event.event === 'resync')!.data)).toMatchObject({
      message: expect.stringContaining('re-list'),
    });
  });

  it('opens only with a valid stream token or a bearer JWT, never with the JWT in the URL', async () => {
    const jwt = await system.jwtFor('user-alice');
    const asQuery = await fetch(eventsUrl(jwt));
    expect(asQuery.status).toBe(401);
    expect(await asQuery.json()).toMatchObject({ error: 'unauthorized' });
    const token = await streamToken('user-alice');
    const tampered = token.replace(/\.([A-Za-z0-9_-])/, (_, c: string) => `.${c === 'A' ? 'B' : 'A'}`);
    expect((await fetch(eventsUrl(tampered))).status).toBe(401);
    expect((await fetch(`${system.url}/api/meetings/events`)).status).toBe(401);
    expect((await fetch(`${system.url}/api/meetings/events/token`, { method: 'POST' })).status).toBe(401);
    const badId = await fetch(eventsUrl(token), { headers: { 'last-event-id': 'x y' } });
    expect(badId.status).toBe(400);
    const withHeader = await openStream(`${system.url}/api/meetings/events`, { authorization: `Bearer ${jwt}` });
    expect(withHeader.response.status).toBe(200);
    await withHeader.close();
  });
});
