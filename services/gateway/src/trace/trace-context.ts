import { randomBytes } from 'node:crypto';

/** W3C trace context for one hop through the gateway. */
export interface TraceContext {
  traceId: string;
  /** This hop's span id: the parent id of whatever the gateway calls next. */
  spanId: string;
  flags: string;
  /** The caller's tracestate, passed on untouched when its traceparent was valid. */
  tracestate?: string;
  /** The `traceparent` to send downstream. */
  traceparent: string;
}

const traceparentPattern = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;

/**
 * Continues the caller's trace when its `traceparent` is valid (same trace id, a new span id
 * for this hop), else starts a new sampled trace, as W3C Trace Context asks of an intermediary.
 */
export function continueTrace(traceparent: string | undefined, tracestate?: string): TraceContext {
  const parsed = parseTraceparent(traceparent);
  const spanId = randomNonZeroHex(8);
  if (!parsed) {
    const traceId = randomNonZeroHex(16);
    return { traceId, spanId, flags: '01', traceparent: `00-${traceId}-${spanId}-01` };
  }
  const state = tracestate?.trim();
  return {
    traceId: parsed.traceId,
    spanId,
    flags: parsed.flags,
    ...(state && state.length <= 512 ? { tracestate: state } : {}),
    traceparent: `00-${parsed.traceId}-${spanId}-${parsed.flags}`,
  };
}

/** The trace id and flags of a valid `traceparent`, or undefined. */
export function parseTraceparent(
  value: string | undefined,
): { traceId: string; parentId: string; flags: string } | undefined {
  const match = traceparentPattern.exec(value?.trim().toLowerCase() ?? '');
  if (!match) return undefined;
  const [, version, traceId, parentId, flags, rest] = match as unknown as [
    string,
    string,
    string,
    string,
    string,
    string?,
  ];
  // Version ff is forbidden; version 00 has exactly four fields; later versions may append more.
  if (version === 'ff' || (version === '00' && rest !== undefined)) return undefined;
  if (/^0+$/.test(traceId) || /^0+$/.test(parentId)) return undefined;
  return { traceId, parentId, flags };
}

function randomNonZeroHex(bytes: number): string {
  for (;;) {
    const value = randomBytes(bytes).toString('hex');
    if (!/^0+$/.test(value)) return value;
  }
}
