import { startGatewaySystem, waitFor, type GatewaySystem, type SimUser } from './harness';

let system: GatewaySystem;

beforeAll(async () => {
  system = await startGatewaySystem('gwimport');
}, 120_000);

afterAll(async () => {
  await system?.stop();
});

const day = 24 * 3600 * 1000;

interface Booking {
  scheduled_event: { uri: string };
  invitee: { uri: string };
}

function bookAt(host: SimUser, offsetDays: number, n: number): Promise<Booking> {
  const start = new Date(Math.floor((Date.now() + offsetDays * day) / 3_600_000) * 3_600_000 + n * 60_000);
  return system.simCall<Booking>('/_sim/bookings', {
    user: host.uri,
    invitee: { name: `Guest ${n}`, email: `guest${n}@example.com` },
    start_time: start.toISOString(),
    end_time: new Date(start.getTime() + 1_800_000).toISOString(),
  });
}

interface MeetingView {
  scheduledEventUri: string;
  status: string;
  invitees: { uri: string; status: string }[];
}

async function meetingsOf(userId: string): Promise<MeetingView[]> {
  const answer = await system.api('/api/meetings?limit=100', { userId });
  return answer.body.meetings as MeetingView[];
}

async function connect(userId: string, user: SimUser) {
  return system.api('/api/calendly/token', { userId, method: 'POST', body: { token: user.personal_access_token } });
}

describe('import on connect', () => {
  it('brings in what Calendly already holds, and a webhook racing the import ends in one correct meeting', async () => {
    const host = await system.createSimUser('importer');
    const past = await bookAt(host, -10, 1);
    const soon = await bookAt(host, 3, 2);
    const later = await bookAt(host, 200, 3);
    const tooOld = await bookAt(host, -200, 4);
    await system.simCall('/_sim/invitees/cancel', { invitee: later.invitee.uri, reason: 'changed plans' });

    expect((await connect('user-importer', host)).status).toBe(200);
    // Right away, while the import may still be running: a change that comes as a webhook.
    await system.simCall('/_sim/invitees/cancel', { invitee: soon.invitee.uri, reason: 'raced the import' });

    const meetings = await waitFor(
      async () => {
        const all = await meetingsOf('user-importer');
        const soonMeeting = all.find((meeting) => meeting.scheduledEventUri === soon.scheduled_event.uri);
        return all.length === 3 && soonMeeting?.status === 'canceled' ? all : undefined;
      },
      { timeoutMs: 30_000, what: 'three imported meetings, the raced one canceled' },
    );
    const byEvent = new Map(meetings.map((meeting) => [meeting.scheduledEventUri, meeting]));
    expect(byEvent.get(past.scheduled_event.uri)).toMatchObject({ status: 'active' });
    expect(byEvent.get(later.scheduled_event.uri)).toMatchObject({ status: 'canceled' });
    expect(byEvent.has(tooOld.scheduled_event.uri)).toBe(false);
    for (const meeting of meetings) expect(meeting.invitees).toHaveLength(1);
    expect(byEvent.get(soon.scheduled_event.uri)!.invitees[0]).toMatchObject({
      uri: soon.invitee.uri,
      status: 'canceled',
    });
  });

  it("imports a user whose plan cannot have a webhook, and nobody else's meetings", async () => {
    const free = await system.createSimUser('freeplan', { plan: 'free' });
    const other = await system.connectWithToken('user-bystander');
    await bookAt(other, 1, 5);
    const booked = await bookAt(free, 2, 6);
    // Connected all the same: Calendly's refusal makes the user polled (subscription's polling test).
    const answer = await connect('user-free', free);
    expect(answer).toMatchObject({ status: 200, body: { connected: true } });
    const meetings = await waitFor(
      async () => {
        const all = await meetingsOf('user-free');
        return all.length > 0 ? all : undefined;
      },
      { timeoutMs: 30_000, what: "the free-plan user's meeting" },
    );
    expect(meetings.map((meeting) => meeting.scheduledEventUri)).toEqual([booked.scheduled_event.uri]);
  });
});

describe('sync state', () => {
  it('shows the import on connect with its progress, then live on the webhook', async () => {
    const host = await system.createSimUser('syncstate');
    const total = 8;
    for (let n = 0; n < total; n++) await bookAt(host, 1 + n, 100 + n);
    // Slow Calendly down, so the import is seen in the middle.
    await system.simCall('/_sim/faults', { latency: { api_ms: 250 } });
    let importing: { sync: Record<string, unknown> } | undefined;
    try {
      const answer = await connect('user-syncstate', host);
      expect(answer.status).toBe(200);
      expect(answer.body.sync).toMatchObject({ mode: 'webhook', import: { requestedAt: expect.any(String) } });
      importing = await waitFor(
        async () => {
          const { body } = await system.api('/api/calendly/connection', { userId: 'user-syncstate' });
          const sync = body.sync as { state: string; import: { eventsImported: number } };
          return sync.state === 'importing' && sync.import.eventsImported > 0 ? (body as never) : undefined;
        },
        { timeoutMs: 30_000, what: 'the import in progress' },
      );
    } finally {
      await system.simCall('/_sim/faults', { latency: { api_ms: 0 } });
    }
    expect(importing!.sync).toMatchObject({
      state: 'importing',
      reason: null,
      import: { status: 'running', startedAt: expect.any(String), completedAt: null },
    });
    const live = await waitFor(
      async () => {
        const { body } = await system.api('/api/calendly/connection', { userId: 'user-syncstate' });
        return (body.sync as { state: string }).state === 'live' ? body : undefined;
      },
      { timeoutMs: 30_000, what: 'the connection to be live' },
    );
    expect(live.sync).toEqual({
      state: 'live',
      reason: null,
      detail: null,
      mode: 'webhook',
      modeReason: null,
      import: {
        status: 'completed',
        eventsImported: total,
        inviteesImported: total,
        requestedAt: expect.any(String),
        startedAt: expect.any(String),
        completedAt: expect.any(String),
        pausedUntil: null,
        error: null,
      },
    });
    const notConnected = await system.api('/api/calendly/connection', { userId: 'user-never-connected' });
    expect(notConnected.body).toMatchObject({ connected: false, sync: null });
  });
});
