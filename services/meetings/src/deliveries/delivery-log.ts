import {
  pageSizeOf,
  prepared,
  type PageSizeBounds,
  type Pool,
  type Queryable,
  type QueryConfig,
} from '@calsync/service-kit';
import { InvalidQueryError } from '../meetings/meeting-queries';

/** What became of a received delivery: the meetings applier's outcomes, and the dead-letter stream's. */
export type DeliveryOutcome = 'applied' | 'duplicate' | 'ignored' | 'dead_lettered';

/** One received delivery as the log keeps it: never its payload. */
export interface DeliveryLogEntry {
  deliveryKey: string;
  userId: string;
  eventType: string;
  outcome: DeliveryOutcome;
  receivedAt: Date;
  recordedAt: Date;
  /** From receipt at the gateway to the outcome committed here. */
  latencyMs: number;
}

export interface DeliveryLogQuery {
  /** One user's log; undefined for every user's (operators only). */
  userId?: string;
  /** 0 means the default. */
  pageSize: number;
  cursor: string;
}

export interface DeliveryLog {
  /** Newest first, keyset-paged. Throws InvalidQueryError for a bad page size or cursor. */
  list(query: DeliveryLogQuery): Promise<{ deliveries: DeliveryLogEntry[]; nextCursor: string }>;
}

/** How many rows one page may hold: the user API's and the operators' bounds differ. */
export const userPageBounds: PageSizeBounds = { defaultSize: 20, maxSize: 100 };
export const operatorPageBounds: PageSizeBounds = { defaultSize: 50, maxSize: 200 };

const maxUserIdLength = 200;
// Exactly what encodeCursor writes: a version and the last row's id, nothing else.
const cursorPattern = /^d1\.([1-9]\d{0,17})$/;

const encodeCursor = (id: string) => `d1.${id}`;

function decodeCursor(cursor: string): string {
  const match = cursorPattern.exec(cursor);
  if (!match) throw new InvalidQueryError('"cursor" is not one this service handed out');
  return match[1]!;
}

/** One received delivery, as the log is given it. */
export interface DeliveryLogInput {
  userId: string;
  deliveryKey: string;
  eventType: string;
  outcome: DeliveryOutcome;
  receivedAt: Date;
}

/**
 * The statement that logs `entry`, for another statement to run alongside it (`bind` adds a
 * value to the shared parameters and answers its `$n`).
 */
export function recordDeliverySql(entry: DeliveryLogInput, bind: (value: unknown) => string): string {
  return `INSERT INTO delivery_log (user_id, delivery_key, event_type, outcome, received_at)
    VALUES (${[entry.userId, entry.deliveryKey, entry.eventType, entry.outcome, entry.receivedAt].map(bind).join(', ')})`;
}

/**
 * Records one received delivery on the caller's connection (inside the transaction that decided
 * its outcome, so an applied delivery and its log row commit together).
 */
export async function recordDelivery(db: Queryable, entry: DeliveryLogInput): Promise<void> {
  await db.query(recordDeliveryStatement(entry));
}

/** recordDelivery's statement, for a caller that runs it itself (as its transaction's last). */
export function recordDeliveryStatement(entry: DeliveryLogInput): QueryConfig<unknown[]> {
  const values: unknown[] = [];
  return prepared(
    recordDeliverySql(entry, (value) => `$${values.push(value)}`),
    values,
  );
}

interface LogRow {
  id: string;
  user_id: string;
  delivery_key: string;
  event_type: string;
  outcome: DeliveryOutcome;
  received_at: Date;
  recorded_at: Date;
}

export function createDeliveryLog(deps: { pool: Pool; bounds: PageSizeBounds }): DeliveryLog {
  const { pool, bounds } = deps;
  return {
    async list(query) {
      const pageSize = pageSizeOf(query.pageSize, bounds, (message) => new InvalidQueryError(message));
      if (query.userId !== undefined && (query.userId.length === 0 || query.userId.length > maxUserIdLength))
        throw new InvalidQueryError(`user_id must be 1 to ${maxUserIdLength} characters`);
      const conditions: string[] = [];
      const values: unknown[] = [];
      const bind = (value: unknown) => `$${values.push(value)}`;
      if (query.userId !== undefined) conditions.push(`user_id = ${bind(query.userId)}`);
      if (query.cursor) conditions.push(`id < ${bind(decodeCursor(query.cursor))}::bigint`);
      const { rows } = await pool.query<LogRow>(
        `SELECT id::text AS id, user_id, delivery_key, event_type, outcome, received_at, recorded_at
         FROM delivery_log ${conditions.length > 0 ? `WHERE ${conditions.join(' AND ')}` : ''}
         ORDER BY id DESC LIMIT ${bind(pageSize + 1)}`,
        values,
      );
      const page = rows.slice(0, pageSize);
      const last = page.at(-1);
      return {
        deliveries: page.map((row) => ({
          deliveryKey: row.delivery_key,
          userId: row.user_id,
          eventType: row.event_type,
          outcome: row.outcome,
          receivedAt: row.received_at,
          recordedAt: row.recorded_at,
          latencyMs: Math.max(0, row.recorded_at.getTime() - row.received_at.getTime()),
        })),
        nextCursor: rows.length > pageSize && last ? encodeCursor(last.id) : '',
      };
    },
  };
}
