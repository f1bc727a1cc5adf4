import { continueTrace, parseTraceparent } from './trace-context';

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
  ])('refuses a traceparent with %s', (_label, value) => {
    expect(parseTraceparent(value)).toBeUndefined();
    expect(continueTrace(value).traceId).not.toBe('4bf92f3577b34da6a3ce929d0e0e4736');
  });

  it('accepts a later version with extra fields and upper-case hex', () => {
    expect(parseTraceparent('01-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-00-future')).toEqual({
      traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
      parentId: '00f067aa0ba902b7',
      flags: '00',
    });
  });
});
