import { request } from 'node:http';
import { waitFor } from '@calsync/service-kit/testing';
import { rawRequest, startGatewaySystem, type DeliveryAttempt, type GatewaySystem, type SimUser } from './harness';

let system: GatewaySystem;
let alice: SimUser;
let first: DeliveryAttempt;

beforeAll(async () => {
  system = await startGatewaySystem('gwdeliveries');
  alice = await system.connectWithToken('user-alice');
  await system.book(alice, 1);
  first = await system.waitForAttempt((a) => a.event === 'invitee.created' && a.status !== null);
}, 120_000);

afterAll(async () => {
  await system?.stop();
});

const keyOf = (attempt: DeliveryAttempt) => JSON.parse(attempt.body) as { payload: { uri: string } };

describe('a genuine delivery', () => {
  it('is stored once even when Calendly sends it three times, and every send is acknowledged', async () => {
    expect(first.status).toBe(200);
    expect(JSON.parse(first.response_body!)).toEqual({ status: 'stored' });
    for (let again = 0; again < 2; again += 1) {
      const response = await system.replay(first);
      expect(response.status).toBe(200);
      expect(await response.json()).toEqual({ status: 'duplicate' });
    }
    const stored = (await system.storedEvents()).filter(
      ({ event }) => JSON.parse(event.payload.toString()).payload.uri === keyOf(first).payload.uri,
    );
    expect(stored).toHaveLength(1);
    const [{ event, subject, headers }] = stored as [(typeof stored)[number]];
    expect(event).toMatchObject({
      userId: 'user-alice',
      calendlyUserUri: alice.uri,
      eventType: 'invitee.created',
      hookId: new URL(first.url).pathname.split('/').pop(),
    });
    // Byte-exact: the body Calendly signed, not a re-serialisation of it.
    expect(event.payload.toString('utf8')).toBe(first.body);
    expect(event.deliveryKey).not.toBe('');
    expect(event.receivedAt).toBeInstanceOf(Date);
    expect(subject).toBe(system.names.eventSubject('invitee.created'));
    expect(headers['Nats-Msg-Id']).toBe(event.deliveryKey);
    // Tracing is off in this process: no trace context is invented (scripts/e2e/tracing.test.ts has it on).
    expect(headers.traceparent).toBeUndefined();
    expect(headers['X-Request-Id']).toBeTruthy();
  });

  it("answers with the caller's request id and logs it; a caller's trace context changes nothing while tracing is off", async () => {
    await system.book(alice, 2);
    const attempt = await system.waitForAttempt(
      (a) => a.event === 'invitee.created' && a.status !== null && a.body !== first.body,
    );
    // The simulator's own delivery had no trace; a retry through a traced proxy would.
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const response = await system.replay(attempt, {
      headers: { traceparent: `00-${traceId}-00f067aa0ba902b7-01`, 'x-request-id': 'calendly-retry-7' },
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('x-request-id')).toBe('calendly-retry-7');
    const stored = (await system.storedEvents()).find(({ event }) => event.payload.toString() === attempt.body);
    // The first send was stored; this one was a duplicate and changed nothing.
    expect(stored?.headers['X-Request-Id']).not.toBe('calendly-retry-7');
    const line = system.gatewayLines
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((l) => l.requestId === 'calendly-retry-7' && l.msg === 'request');
    expect(line).toMatchObject({ outcome: 'duplicate', status: 200, userId: 'user-alice' });
    expect(line).not.toHaveProperty('trace_id');
    expect(JSON.stringify(line)).not.toContain(traceId);
  });

  it('counts deliveries by outcome and times verification and publishing', async () => {
    const metrics = await (await fetch(`${system.url}/metrics`)).text();
    const value = (pattern: RegExp) => Number(pattern.exec(metrics)?.[1] ?? NaN);
    expect(
      value(
        /http_requests_total\{route="\/webhooks\/calendly\/:hookId",method="POST",status="200",outcome="stored",service="gateway"\} (\d+)/,
      ),
    ).toBeGreaterThanOrEqual(2);
    expect(
      value(
        /http_requests_total\{route="\/webhooks\/calendly\/:hookId",method="POST",status="200",outcome="duplicate",service="gateway"\} (\d+)/,
      ),
    ).toBeGreaterThanOrEqual(3);
    expect(
      value(/gateway_publish_duration_seconds_count\{service="gateway",outcome="duplicate"\} (\d+)/),
    ).toBeGreaterThanOrEqual(3);
    expect(
      value(/gateway_verify_duration_seconds_count\{service="gateway",outcome="verified"\} (\d+)/),
    ).toBeGreaterThanOrEqual(5);
  });
});

describe('deliveries that must not be stored', () => {
  let before: number;
  beforeEach(async () => {
    before = (await system.storedEvents()).length;
  });
  afterEach(async () => {
    expect((await system.storedEvents()).length).toBe(before);
  });

  const send = (path: string, body: string | Buffer, headers: Record<string, string>) =>
    fetch(`${system.url}${path}`, { method: 'POST', headers, body });

  it.each([
    [
      'a body changed after signing',
      (a: DeliveryAttempt) => system.replay(a, { body: a.body.replace('Invitee', 'Invitee!') }),
      401,
      'signature_mismatch',
    ],
    [
      'a signature of another body',
      (a: DeliveryAttempt) =>
        system.replay(a, {
          headers: { 'calendly-webhook-signature': `t=${Math.floor(Date.now() / 1000)},v1=${'0'.repeat(64)}` },
        }),
      401,
      'signature_mismatch',
    ],
    [
      'no signature',
      (a: DeliveryAttempt) => system.replay(a, { headers: { 'calendly-webhook-signature': '' } }),
      401,
      'signature_missing',
    ],
    [
      'a garbled signature header',
      (a: DeliveryAttempt) => system.replay(a, { headers: { 'calendly-webhook-signature': 'v1=nothex' } }),
      401,
      'signature_malformed',
    ],
    [
      'an unknown hook',
      (a: DeliveryAttempt) =>
        system.replay(a, { path: '/webhooks/calendly/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' }),
      404,
      'unknown_hook',
    ],
    [
      'a per-user delivery sent to the legacy URL',
      (a: DeliveryAttempt) => system.replay(a, { path: '/api/calendly/webhook' }),
      404,
      'unknown_hook',
    ],
    [
      "a body that is not JSON, though signed with the hook's key",
      (a: DeliveryAttempt) => system.replaySigned(a, '{"event":'),
      400,
      'malformed_json',
    ],
    [
      "JSON that is not an envelope, though signed with the hook's key",
      (a: DeliveryAttempt) => system.replaySigned(a, '[]'),
      400,
      'malformed_payload',
    ],
    [
      'a body that is not JSON, unsigned',
      (a: DeliveryAttempt) => system.replay(a, { body: '{"event":', headers: { 'calendly-webhook-signature': '' } }),
      401,
      'signature_missing',
    ],
    [
      'a form body',
      (a: DeliveryAttempt) => system.replay(a, { headers: { 'content-type': 'application/x-www-form-urlencoded' } }),
      415,
      'unsupported_media_type',
    ],
  ])('refuses %s', async (_label, sendIt, status, error) => {
    const response = await sendIt(first);
    expect(response.status).toBe(status);
    expect(await response.json()).toEqual({ error, message: expect.any(String) });
  });

  it('refuses a body over the size limit with 413 before reading it', async () => {
    const response = await send(new URL(first.url).pathname, Buffer.alloc(600 * 1024, 0x20), first.headers);
    expect(response.status).toBe(413);
  });

  it('refuses deliveries signed too long ago or in the future (clock skew at Calendly)', async () => {
    for (const [offset, error, n] of [
      [-10 * 60_000, 'signature_expired', 3],
      [10 * 60_000, 'signature_from_future', 4],
    ] as const) {
      await system.simCall('/_sim/faults', { clock_offset_ms: offset });
      await system.book(alice, n);
      const attempt = await system.waitForAttempt(
        (a) => a.status === 401 && JSON.parse(a.response_body!).error === error,
      );
      expect(JSON.parse(attempt.response_body!)).toEqual({ error, message: expect.any(String) });
      await system.simCall('/_sim/faults', undefined, 'DELETE');
    }
  });
});

describe('trace headers from outside are untrusted input', () => {
  const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
  const traceparent = `00-${traceId}-00f067aa0ba902b7-01`;
  // Each of these is a byte or a shape W3C Trace Context forbids; some are also bytes gRPC metadata refuses.
  const junk: [string, Record<string, string>][] = [
    ['a non-ASCII tracestate (latin1)', { traceparent, tracestate: 'vendor=caf\u00e9' }],
    [
      'a non-ASCII tracestate (UTF-8 bytes)',
      { traceparent, tracestate: Buffer.from('vendor=café').toString('latin1') },
    ],
    ['a tab inside tracestate', { traceparent, tracestate: 'vendor=a\tb' }],
    ['an upper-case tracestate key', { traceparent, tracestate: 'Vendor=abc' }],
    ['a non-ASCII traceparent', { traceparent: `cc-${traceId}-00f067aa0ba902b7-01-caf\u00e9`, tracestate: 'a=b' }],
    ['a traceparent with a tab', { traceparent: `00-${traceId}-00f067aa0ba\t902b7-01` }],
  ];
  const forged = (headers: Record<string, string>) =>
    rawRequest(`${system.url}${new URL(first.url).pathname}`, {
      method: 'POST',
      headers: {
        ...first.headers,
        'calendly-webhook-signature': `t=${Math.floor(Date.now() / 1000)},v1=${'0'.repeat(64)}`,
        ...headers,
      },
      body: first.body,
    });

  it.each(junk)('refuses a forged delivery with %s as 401, never as a retryable 5xx', async (_label, headers) => {
    const before = (await system.storedEvents()).length;
    const response = await forged(headers);
    expect({ status: response.status, body: JSON.parse(response.body) }).toEqual({
      status: 401,
      body: { error: 'signature_mismatch', message: expect.any(String) },
    });
    expect(response.headers['retry-after']).toBeUndefined();
    expect((await system.storedEvents()).length).toBe(before);
  });

  it('stores a genuine delivery with junk trace headers, and copies none of them while tracing is off', async () => {
    const attempt = await system.withheldDelivery(alice, 6);
    const response = await rawRequest(`${system.url}${new URL(attempt.url).pathname}`, {
      method: 'POST',
      headers: { ...attempt.headers, traceparent, tracestate: 'vendor=caf\u00e9' },
      body: attempt.body,
    });
    expect({ status: response.status, body: JSON.parse(response.body) }).toEqual({
      status: 200,
      body: { status: 'stored' },
    });
    // With tracing on, the trace goes on and only a valid tracestate with it: scripts/e2e/tracing.test.ts.
    const stored = (await system.storedEvents()).find(({ event }) => event.payload.toString() === attempt.body);
    expect(stored?.headers.traceparent).toBeUndefined();
    expect(stored?.headers.tracestate).toBeUndefined();
  });
});

describe('shutdown', () => {
  it('finishes a delivery in flight before stopping, and takes no new connection', async () => {
    const attempt = await system.withheldDelivery(alice, 5);
    // Resend it slowly: the headers and half the body now, the rest once stop() has begun.
    const url = new URL(`${system.url}${new URL(attempt.url).pathname}`);
    const body = Buffer.from(attempt.body);
    let answer: (value: { status: number; body: string }) => void;
    const answered = new Promise<{ status: number; body: string }>((resolve) => (answer = resolve));
    const slow = request(
      {
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        method: 'POST',
        // 100-continue: the gateway answers it once it has the request, the signal that the
        // delivery is in flight before stop() begins.
        headers: { ...attempt.headers, 'content-length': String(body.length), expect: '100-continue' },
      },
      (res) => {
        let text = '';
        res.on('data', (chunk: Buffer) => (text += chunk.toString()));
        res.on('end', () => answer({ status: res.statusCode ?? 0, body: text }));
      },
    );
    const inFlight = new Promise<void>((resolve) => slow.once('continue', () => resolve()));
    slow.flushHeaders();
    await inFlight;
    slow.write(body.subarray(0, 10));
    let stopped = false;
    const stopping = system.gateway.stop().then(() => (stopped = true));
    // Stopping has begun once the gateway takes no new connection.
    await waitFor(() =>
      fetch(`${system.url}/healthz`).then(
        () => false,
        () => true,
      ),
    );
    expect(stopped).toBe(false);
    slow.end(body.subarray(10));
    expect(await answered).toEqual({ status: 200, body: JSON.stringify({ status: 'stored' }) });
    await stopping;
    expect(stopped).toBe(true);
  });
});
