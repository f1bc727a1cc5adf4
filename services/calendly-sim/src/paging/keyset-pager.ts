import { invalidArgument, type ErrorDetail } from '../http/errors';

type Key = (number | string)[];

/** What a list request asked for: a page size and where to continue. */
export interface PageRequest {
  count: number;
  token?: { direction: 'next' | 'previous'; key: Key };
}

export interface Pagination {
  count: number;
  next_page: string | null;
  next_page_token: string | null;
  previous_page: string | null;
  previous_page_token: string | null;
}

export interface Page<T> {
  collection: T[];
  pagination: Pagination;
}

const defaultCount = 20;
const maxCount = 100;

/** Reads `count` (default 20, 1..100) and `page_token`, collecting problems in `details`. */
export function parsePageRequest(query: Record<string, string | undefined>, details: ErrorDetail[]): PageRequest {
  let count = defaultCount;
  if (query.count !== undefined) {
    const parsed = Number(query.count);
    if (!/^\d+$/.test(query.count) || parsed < 1)
      details.push({ parameter: 'count', message: 'must be a positive integer' });
    else if (parsed > maxCount)
      details.push({ parameter: 'count', message: `must be less than or equal to ${maxCount}` });
    else count = parsed;
  }
  let token: PageRequest['token'];
  if (query.page_token !== undefined) {
    token = decodeToken(query.page_token);
    if (!token) details.push({ parameter: 'page_token', message: 'is invalid' });
  }
  return { count, token };
}

/** Throws Calendly's 400 when any parameter was wrong. */
export function assertValid(details: ErrorDetail[]): void {
  if (details.length > 0) throw invalidArgument(details);
}

function encodeToken(direction: 'next' | 'previous', key: Key): string {
  return Buffer.from(JSON.stringify({ d: direction === 'next' ? 'n' : 'p', k: key })).toString('base64url');
}

function decodeToken(raw: string): PageRequest['token'] | undefined {
  try {
    const parsed = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8')) as { d?: unknown; k?: unknown };
    if ((parsed.d !== 'n' && parsed.d !== 'p') || !Array.isArray(parsed.k)) return undefined;
    if (!parsed.k.every((part) => typeof part === 'number' || typeof part === 'string')) return undefined;
    return { direction: parsed.d === 'n' ? 'next' : 'previous', key: parsed.k as Key };
  } catch {
    return undefined;
  }
}

function compareKeys(a: Key, b: Key): number {
  for (let i = 0; i < Math.max(a.length, b.length); i += 1) {
    const x = a[i];
    const y = b[i];
    if (x === y) continue;
    if (x === undefined) return -1;
    if (y === undefined) return 1;
    return x < y ? -1 : 1;
  }
  return 0;
}

/**
 * One page of `items` by keyset: tokens name the boundary item's key, so pages stay correct
 * while items are added or removed between requests. `items` must already be filtered.
 */
export function pageOf<T>(options: {
  items: T[];
  keyOf: (item: T) => Key;
  descending: boolean;
  request: PageRequest;
  /** The absolute URL of this list with the same query and the given page token. */
  link: (pageToken: string) => string;
}): Page<T> {
  const { keyOf, request, link } = options;
  const sign = options.descending ? -1 : 1;
  const ordered = [...options.items].sort((a, b) => sign * compareKeys(keyOf(a), keyOf(b)));
  const cmp = (item: T, key: Key) => sign * compareKeys(keyOf(item), key);
  let start = 0;
  let end = Math.min(ordered.length, request.count);
  if (request.token?.direction === 'next') {
    const key = request.token.key;
    start = ordered.findIndex((item) => cmp(item, key) > 0);
    if (start < 0) start = ordered.length;
    end = Math.min(ordered.length, start + request.count);
  } else if (request.token?.direction === 'previous') {
    const key = request.token.key;
    end = ordered.findIndex((item) => cmp(item, key) >= 0);
    if (end < 0) end = ordered.length;
    start = Math.max(0, end - request.count);
  }
  const collection = ordered.slice(start, end);
  const first = collection[0];
  const last = collection[collection.length - 1];
  const nextToken = last && end < ordered.length ? encodeToken('next', keyOf(last)) : null;
  const previousToken = first && start > 0 ? encodeToken('previous', keyOf(first)) : null;
  return {
    collection,
    pagination: {
      count: collection.length,
      next_page: nextToken ? link(nextToken) : null,
      next_page_token: nextToken,
      previous_page: previousToken ? link(previousToken) : null,
      previous_page_token: previousToken,
    },
  };
}

/** The absolute URL of `path` with `query` (minus any old page token) and a new page token. */
export function pageLink(baseUrl: string, path: string, query: Record<string, string | undefined>) {
  return (pageToken: string): string => {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(query))
      if (value !== undefined && key !== 'page_token') params.set(key, value);
    params.set('page_token', pageToken);
    return `${baseUrl}${path}?${params.toString()}`;
  };
}
