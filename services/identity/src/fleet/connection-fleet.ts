import { pageSizeOf, type PageSizeBounds, type Pool } from '@calsync/service-kit';
import { listConnectionsPage, type ConnectionState } from '../connections/connection-repository';
import { toConnection, type Connection } from '../connections/connection-view';
import { invalidInput } from '../errors';

export interface ConnectionPageQuery {
  state?: ConnectionState;
  /** 1..500; undefined means 100. */
  pageSize?: number;
  /** The previous page's nextCursor. */
  cursor?: string;
}

/** Every user's connection at once, for operators: never on a user's request path. */
export interface ConnectionFleet {
  /** One page in user id order, without any secret; throws an INVALID_INPUT IdentityError for a bad page size or cursor. */
  list(query: ConnectionPageQuery): Promise<{ connections: Connection[]; nextCursor: string }>;
}

const pageBounds: PageSizeBounds = { defaultSize: 100, maxSize: 500 };
const maxUserIdLength = 200;
// eslint-disable-next-line no-control-regex
const controlCharacters = /[\u0000-\u001f\u007f]/;

/** The cursor names the last user id of a page; opaque, so callers never build one. */
const encodeCursor = (userId: string) => Buffer.from(userId, 'utf8').toString('base64url');

function decodeCursor(cursor: string): string {
  const invalid = invalidInput('cursor is not one this API returned');
  if (!/^[A-Za-z0-9_-]+$/.test(cursor) || cursor.length > 4 * maxUserIdLength) throw invalid;
  const userId = Buffer.from(cursor, 'base64url').toString('utf8');
  // Only what encodeCursor makes of a user id decodes: anything else is not ours.
  if (
    userId.length === 0 ||
    userId.length > maxUserIdLength ||
    controlCharacters.test(userId) ||
    encodeCursor(userId) !== cursor
  )
    throw invalid;
  return userId;
}

export function createConnectionFleet(deps: { pool: Pool }): ConnectionFleet {
  return {
    async list(query) {
      const pageSize = pageSizeOf(query.pageSize, pageBounds, invalidInput);
      const after = query.cursor ? decodeCursor(query.cursor) : '';
      // One more than asked tells whether another page follows without a count.
      const rows = await listConnectionsPage(deps.pool, after, pageSize + 1, query.state ? { state: query.state } : {});
      const page = rows.slice(0, pageSize);
      return {
        connections: page.map(toConnection),
        nextCursor: rows.length > pageSize ? encodeCursor(page[page.length - 1]!.user_id) : '',
      };
    },
  };
}
