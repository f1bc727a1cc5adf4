import { continueTrace, parseTraceparent, parseTracestate } from './trace-context';

const incoming = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

describe('continueTrace', () => {
  it('keeps the caller trace id and flags and gives this hop a new span id', () => {
    const trace = continueTrace(incoming, 'vendor=abc');
    expect(trace.traceId).toBe('4bf92f3577b34da6a3ce929d0e0e4736');
    expect(trace.spanId).toMatch(/^[0-9a-f]{16}$/);
    expect(trace.spanId).not.toBe('00f067aa0ba902b7');
    expect(trace.traceparent).toBe(`00-4bf92f3577b34da6a3ce929d0e0e4736-${trace.spanId}-01`);
    expect(trace.tracestate).toBe('vendor=abc');
  });

  it('starts a new sampled trace when there is no traceparent, and drops a tracestate without one', () => {
    const trace = continueTrace(undefined, 'vendor=abc');
    expect(trace.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    expect(trace.tracestate).toBeUndefined();
    expect(continueTrace(undefined).traceId).not.toBe(trace.traceId);
  });

  it.each([
    ['garbage', 'not-a-traceparent'],
    ['version ff', 'ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'],
    ['all-zero trace id', '00-00000000000000000000000000000000-00f067aa0ba902b7-01'],
    ['all-zero parent id', '00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01'],
    ['extra field on version 00', `${incoming}-extra`],
    ['short trace id', '00-4bf92f3577b34da6a3ce929d0e0e47-00f067aa0ba902b7-01'],
    ['upper-case hex', '00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01'],
    ['a non-ASCII field after the flags of a later version', `01-${incoming.slice(3)}-caf\u00e9`],
    ['a tab inside', '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0\tba902b7-01'],
    ['two traceparent headers joined', `${incoming}, ${incoming}`],
  ])('refuses a traceparent with %s', (_label, value) => {
    expect(parseTraceparent(value)).toBeUndefined();
    expect(continueTrace(value).traceId).not.toBe('4bf92f3577b34da6a3ce929d0e0e4736');
  });

  it('accepts a later version with extra fields', () => {
    expect(parseTraceparent('01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-future')).toEqual({
      traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
      parentId: '00f067aa0ba902b7',
      flags: '00',
    });
  });
});

describe('parseTracestate', () => {
  it.each([
    ['one member', 'congo=t61rcWkgMzE', 'congo=t61rcWkgMzE'],
    [
      'members with optional white space around commas',
      'rojo=00f067aa0ba902b7 ,\tcongo=t61rcWkgMzE',
      'rojo=00f067aa0ba902b7,congo=t61rcWkgMzE',
    ],
    ['a multi-tenant key', 'tenant@vendor=abc', 'tenant@vendor=abc'],
    ['empty members', 'a=1,,b=2,', 'a=1,b=2'],
    ['a value with inner spaces', 'a=x y', 'a=x y'],
  ])('keeps %s', (_label, value, kept) => {
    expect(parseTracestate(value)).toBe(kept);
    expect(continueTrace(incoming, value).tracestate).toBe(kept);
  });

  it.each([
    ['a non-ASCII value', 'vendor=caf\u00e9'],
    ['UTF-8 bytes read as latin1', Buffer.from('vendor=café').toString('latin1')],
    ['a tab inside a value', 'vendor=a\tb'],
    ['a control character', 'vendor=a\u0001b'],
    ['an upper-case key', 'Vendor=abc'],
    ['a key starting with a digit', '1vendor=abc'],
    ['no "="', 'vendor'],
    ['an empty value', 'vendor='],
    ['a space inside a key', 'ven dor=abc'],
    ['"=" inside the value', 'vendor=a=b'],
    ['a duplicated key', 'a=1,a=2'],
    ['33 members', Array.from({ length: 33 }, (_, i) => `k${i}=v`).join(',')],
    ['more than 512 characters', `a=${'x'.repeat(255)},b=${'x'.repeat(255)},c=x`],
    ['only commas', ',,'],
  ])('drops a tracestate with %s, keeping the trace', (_label, value) => {
    expect(parseTracestate(value)).toBeUndefined();
    const trace = continueTrace(incoming, value);
    expect(trace.traceId).toBe('4bf92f3577b34da6a3ce929d0e0e4736');
    expect(trace.tracestate).toBeUndefined();
  });
});
