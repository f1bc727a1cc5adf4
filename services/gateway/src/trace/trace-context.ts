import { randomBytes } from 'node:crypto';

/** W3C trace context for one hop through the gateway; every field is safe to put in gRPC metadata and NATS headers. */
export interface TraceContext {
  traceId: string;
  /** This hop's span id: the parent id of whatever the gateway calls next. */
  spanId: string;
  flags: string;
  /** The caller's tracestate when it and its traceparent are valid W3C Trace Context, else absent. */
  tracestate?: string;
  /** The `traceparent` to send downstream. */
  traceparent: string;
}

// Lower-case hex only: W3C Trace Context makes an upper-case id invalid, not a variant.
// A later version may append fields; they must still be visible ASCII.
const traceparentPattern = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-[\x21-\x7e]*)?$/;

// tracestate list members (W3C Trace Context, section 3.3): a simple or multi-tenant key, "=",
// and a value of printable ASCII without "," or "=" that does not end in a space.
const tracestateKey = '(?:[a-z][a-z0-9_*/-]{0,255}|[a-z0-9][a-z0-9_*/-]{0,240}@[a-z][a-z0-9_*/-]{0,13})';
const tracestateValue = '[\\x20-\\x2b\\x2d-\\x3c\\x3e-\\x7e]{0,255}[\\x21-\\x2b\\x2d-\\x3c\\x3e-\\x7e]';
const tracestateMember = new RegExp(`^(${tracestateKey})=${tracestateValue}$`);
const maxTracestateMembers = 32;
// What the gateway passes on; W3C lets an intermediary drop a longer one.
const maxTracestateLength = 512;

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
  const state = parseTracestate(tracestate);
  return {
    traceId: parsed.traceId,
    spanId,
    flags: parsed.flags,
    ...(state ? { tracestate: state } : {}),
    traceparent: `00-${parsed.traceId}-${spanId}-${parsed.flags}`,
  };
}

/** The trace id and flags of a valid `traceparent`, or undefined. */
export function parseTraceparent(
  value: string | undefined,
): { traceId: string; parentId: string; flags: string } | undefined {
  const match = traceparentPattern.exec(value?.trim() ?? '');
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

/**
 * A `tracestate` header that is valid W3C Trace Context (every member well formed, keys unique,
 * at most 32 members and 512 characters), normalised to `a=1,b=2`; undefined for anything else.
 * The whole header is dropped rather than repaired: it is the caller's, and a part of it could
 * mean something else than the whole.
 */
export function parseTracestate(value: string | undefined): string | undefined {
  if (value === undefined || value.length > maxTracestateLength * 2) return undefined;
  const members = value
    .split(',')
    .map((member) => member.replace(/^[ \t]+|[ \t]+$/g, ''))
    .filter((member) => member !== '');
  if (members.length === 0 || members.length > maxTracestateMembers) return undefined;
  const keys = new Set<string>();
  for (const member of members) {
    const key = tracestateMember.exec(member)?.[1];
    if (key === undefined || keys.has(key)) return undefined;
    keys.add(key);
  }
  const normalised = members.join(',');
  return normalised.length <= maxTracestateLength ? normalised : undefined;
}

function randomNonZeroHex(bytes: number): string {
  for (;;) {
    const value = randomBytes(bytes).toString('hex');
    if (!/^0+$/.test(value)) return value;
  }
}
