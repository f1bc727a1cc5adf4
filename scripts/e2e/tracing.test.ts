// OpenTelemetry end to end: every service runs as a real process exporting OTLP/HTTP to a small
// receiver here, and one delivery must come out as one connected trace, from the gateway's HTTP
// span through gRPC and JetStream to the meetings service's SQL write.
import { createSimUser } from '@calsync/calendly-sim/testing';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { waitFor } from '@calsync/service-kit/testing';
import { bootSystem, eventually, http, type RunningSystem } from './system-harness';

interface ReceivedSpan {
  service: string;
  traceId: string;
  spanId: string;
  parentSpanId: string;
  traceState?: string;
  name: string;
  kind: number;
  attributes: Record<string, unknown>;
}

/** OTLP/JSON AnyValue to a plain value. */
function plain(value: Record<string, unknown> | undefined): unknown {
  if (!value) return undefined;
  const [[kind, inner]] = Object.entries(value) as [[string, unknown]];
  return kind === 'intValue' ? Number(inner) : inner;
}

function attributesOf(list: { key: string; value: Record<string, unknown> }[] = []): Record<string, unknown> {
  return Object.fromEntries(list.map(({ key, value }) => [key, plain(value)]));
}

/** An OTLP/HTTP receiver (JSON encoding) that keeps every span it is sent. */
async function startOtlpReceiver(): Promise<{ url: string; spans: ReceivedSpan[]; close(): Promise<void> }> {
  const spans: ReceivedSpan[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/v1/traces' || !/json/.test(req.headers['content-type'] ?? '')) {
        res.writeHead(415).end();
        return;
      }
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
        resourceSpans?: {
          resource?: { attributes?: { key: string; value: Record<string, unknown> }[] };
          scopeSpans?: {
            spans?: (Omit<ReceivedSpan, 'service' | 'attributes'> & {
              attributes?: { key: string; value: Record<string, unknown> }[];
            })[];
          }[];
        }[];
      };
      for (const resourceSpans of body.resourceSpans ?? []) {
        const service = String(attributesOf(resourceSpans.resource?.attributes)['service.name']);
        for (const scope of resourceSpans.scopeSpans ?? [])
          for (const span of scope.spans ?? [])
            spans.push({
              service,
              traceId: span.traceId,
              spanId: span.spanId,
              parentSpanId: span.parentSpanId ?? '',
              ...(span.traceState ? { traceState: span.traceState } : {}),
              name: span.name,
              kind: span.kind,
              attributes: attributesOf(span.attributes),
            });
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    spans,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

const serverKind = 2;

let receiver: Awaited<ReturnType<typeof startOtlpReceiver>>;
let system: RunningSystem;

beforeAll(async () => {
  receiver = await startOtlpReceiver();
  const otel = {
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
    OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
    // Export within a tenth of a second instead of five, so the test waits less.
    OTEL_BSP_SCHEDULE_DELAY: '100',
  };
  system = await bootSystem({
    label: 'tracing',
    extraEnv: { identity: otel, subscription: otel, meetings: otel, gateway: otel },
  });
}, 120_000);

afterAll(async () => {
  await system?.stop();
  await receiver?.close();
});

/** The spans of one trace, checked to form one tree under a single root. */
function connectedTrace(traceId: string): { root: ReceivedSpan; spans: ReceivedSpan[] } {
  const spans = receiver.spans.filter((span) => span.traceId === traceId);
  const ids = new Set(spans.map((span) => span.spanId));
  const roots = spans.filter((span) => !span.parentSpanId);
  const orphans = spans.filter((span) => span.parentSpanId && !ids.has(span.parentSpanId));
  expect(orphans.map((span) => `${span.service} ${span.name}`)).toEqual([]);
  expect(roots).toHaveLength(1);
  return { root: roots[0]!, spans };
}

/** The first HTTP server span the gateway exported for a route. */
function gatewayServerSpan(route: string): Promise<ReceivedSpan> {
  return waitFor(() =>
    receiver.spans.find(
      (span) =>
        span.service === 'calsync-gateway' && span.kind === serverKind && span.attributes['http.route'] === route,
    ),
  );
}

test('one delivery is one connected trace from the gateway HTTP span to the meetings SQL write', async () => {
  const calendly = await createSimUser(system.simulator, {
    name: 'Traced',
    email: 'traced@example.test',
    plan: 'standard',
  });
  const token = system.jwtFor('traced-user');
  await http(`${system.gateway}/api/calendly/token`, {
    method: 'POST',
    token,
    body: { token: calendly.personal_access_token },
  });

  // The user request: gateway HTTP -> identity gRPC -> Calendly over HTTP and Postgres.
  const connectSpan = await gatewayServerSpan('/api/calendly/token');
  await eventually(() => {
    const { spans } = connectedTrace(connectSpan.traceId);
    const services = new Set(spans.map((span) => span.service));
    // meetings joins too when the connect asks it to import the user's meetings.
    expect([...services]).toEqual(
      expect.arrayContaining(['calsync-gateway', 'calsync-identity', 'calsync-subscription']),
    );
    expect(
      spans.some((span) => span.service === 'calsync-identity' && span.attributes['db.system.name'] === 'postgresql'),
    ).toBe(true);
    expect(spans.some((span) => span.attributes['server.address'] === '127.0.0.1' && span.attributes['url.full'])).toBe(
      true,
    );
  });

  const start = new Date(Math.ceil(Date.now() / 3_600_000) * 3_600_000 + 86_400_000);
  await http(`${system.simulator}/_sim/bookings`, {
    method: 'POST',
    body: {
      user: calendly.uri,
      invitee: { name: 'Invitee', email: 'invitee@example.test' },
      start_time: start.toISOString(),
      end_time: new Date(start.getTime() + 1_800_000).toISOString(),
    },
  });

  const deliverySpan = await gatewayServerSpan('/webhooks/calendly/:hookId');
  const delivery = await eventually(() => {
    const trace = connectedTrace(deliverySpan.traceId);
    expect(
      trace.spans.some(
        (span) =>
          span.service === 'calsync-meetings' &&
          span.attributes['db.system.name'] === 'postgresql' &&
          /INSERT INTO meetings/i.test(String(span.attributes['db.query.text'])),
      ),
    ).toBe(true);
    return trace;
  });
  expect(delivery.root).toBe(deliverySpan);
  const names = delivery.spans.map((span) => `${span.service} ${span.name}`);
  expect(names).toEqual(
    expect.arrayContaining([
      // One span per delivery on each side of the VerifyDeliveries stream (the stream's own call is not traced).
      'calsync-gateway calsync.subscription.v1.SubscriptionService/VerifyDeliveries item',
      'calsync-subscription calsync.subscription.v1.SubscriptionService/VerifyDeliveries item',
      expect.stringMatching(/^calsync-gateway publish .*\.calendly\.invitee\.created$/),
      expect.stringMatching(/^calsync-meetings process .*\.calendly\.invitee\.created$/),
    ]),
  );
  // Nobody's statement values are exported: the user's id is a parameter, never in the text.
  expect(JSON.stringify(delivery.spans)).not.toContain('traced-user');

  // Log lines written inside the trace carry its id.
  const accessLine = system
    .logLines()
    .map((line) => line.slice(line.indexOf(' ') + 1))
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .find((line) => line.msg === 'request' && line.route === '/webhooks/calendly/:hookId');
  expect(accessLine).toMatchObject({ trace_id: deliverySpan.traceId });
});

test('junk trace context from outside starts a new trace and never a 5xx, with tracing on', async () => {
  const traceparent = `00-${'4bf92f3577b34da6a3ce929d0e0e4736'}-00f067aa0ba902b7-01`;
  const junk: Record<string, string>[] = [
    { traceparent: 'zz-not-a-trace', tracestate: '=,=,'.repeat(200) },
    { traceparent: `00-${'0'.repeat(32)}-${'0'.repeat(16)}-01`, tracestate: 'a=b' },
    { traceparent: `ff-${'a'.repeat(32)}-${'b'.repeat(16)}-01`, tracestate: 'x=y' },
    { traceparent: `00-${'a'.repeat(32)}-${'b'.repeat(16)}-01-extra`, tracestate: 'x'.repeat(10_000) },
    { traceparent: `00-${'A'.repeat(32)}-${'b'.repeat(16)}-01` },
    { traceparent, tracestate: 'vendor=caf\u00e9' },
    { traceparent, tracestate: 'vendor=a\tb' },
  ];
  const token = system.jwtFor('junk-trace-user');
  for (const headers of junk) {
    const meetings = await fetch(`${system.gateway}/api/meetings`, {
      headers: { ...headers, authorization: `Bearer ${token}` },
    });
    expect(meetings.status).toBe(200);
    const delivery = await fetch(`${system.gateway}/webhooks/calendly/no-such-hook-0000000000000`, {
      method: 'POST',
      headers: { ...headers, 'content-type': 'application/json' },
      body: JSON.stringify({ event: 'invitee.created', payload: {} }),
    });
    expect(delivery.status).toBeLessThan(500);
  }
  const refused = new Set(['0'.repeat(32), 'a'.repeat(32), 'A'.repeat(32).toLowerCase()]);
  await eventually(() => {
    const spans = receiver.spans.filter(
      (span) =>
        span.service === 'calsync-gateway' &&
        span.kind === serverKind &&
        span.attributes['http.route'] === '/api/meetings',
    );
    expect(spans.length).toBeGreaterThanOrEqual(junk.length);
    for (const span of spans) expect(refused.has(span.traceId)).toBe(false);
    // A valid traceparent goes on even beside a junk tracestate; the tracestate does not.
    const continued = spans.filter((span) => span.traceId === '4bf92f3577b34da6a3ce929d0e0e4736');
    expect(continued).toHaveLength(2);
    for (const span of continued) expect(span.traceState ?? '').toBe('');
  });
});
