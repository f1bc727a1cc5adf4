import type { Pool } from '@calsync/service-kit';

export type ImportKind = 'initial_import' | 'gap';
export type ImportStatus = 'running' | 'retrying' | 'completed' | 'failed';

/** Where an import stands: its checkpoint and its progress. */
export interface ImportRecord {
  requestId: string;
  /** The run that owns the checkpoint now (the last to begin it). */
  runId: string | null;
  userId: string;
  kind: ImportKind;
  status: ImportStatus;
  pageToken: string | null;
  lastEventUri: string | null;
  events: number;
  invitees: number;
  applied: number;
  duplicates: number;
  skipped: number;
  calendlyRequests: number;
  resumes: number;
  pausedUntil: Date | null;
  error: string | null;
  startedAt: Date;
  updatedAt: Date;
  completedAt: Date | null;
}

/** What one finished scheduled event adds to the import's progress. */
export interface EventDone {
  pageToken: string | null;
  eventUri: string;
  invitees: number;
  applied: number;
  duplicates: number;
  skipped: number;
  calendlyRequests: number;
}

export interface ImportCheckpoints {
  /**
   * The import's record, created as running when it is new; a running, retrying or failed one is
   * taken up again (counted as a resume). Either way it gets a new run id, which takes the
   * checkpoint from any run before it. A completed one is returned as it is.
   */
  begin(input: {
    requestId: string;
    userId: string;
    kind: ImportKind;
    windowStart: Date;
    windowEnd: Date;
  }): Promise<{ record: ImportRecord; resumed: boolean }>;
  // The writes of a run name it (ImportRun, from begin) and answer false, changing nothing, when
  // another run has begun the import since: the caller must stop.
  /** Records that every invitee of one scheduled event is applied: the point a restart continues after. */
  eventDone(run: ImportRun, done: EventDone): Promise<boolean>;
  /** Moves the checkpoint to the start of another page (or back to the first, null). */
  pageStarted(run: ImportRun, pageToken: string | null, calendlyRequests: number): Promise<boolean>;
  /** Shows that the import waits for the user's rate-limit window (null: no longer waiting). */
  paused(run: ImportRun, until: Date | null): Promise<boolean>;
  completed(run: ImportRun, calendlyRequests: number): Promise<boolean>;
  /** `retrying` when the request will be delivered again, `failed` when it was given up. */
  failed(run: ImportRun, status: 'retrying' | 'failed', error: string): Promise<boolean>;
  /** The user's newest import of this kind, or undefined. */
  latest(userId: string, kind: ImportKind): Promise<ImportRecord | undefined>;
}

/** One run of an import: the request and the run id begin gave it. */
export interface ImportRun {
  requestId: string;
  runId: string;
}

interface Row {
  request_id: string;
  run_id: string | null;
  user_id: string;
  kind: ImportKind;
  status: ImportStatus;
  page_token: string | null;
  last_event_uri: string | null;
  events: number;
  invitees: number;
  applied: number;
  duplicates: number;
  skipped: number;
  calendly_requests: number;
  resumes: number;
  paused_until: Date | null;
  error: string | null;
  started_at: Date;
  updated_at: Date;
  completed_at: Date | null;
}

const toRecord = (row: Row): ImportRecord => ({
  requestId: row.request_id,
  runId: row.run_id,
  userId: row.user_id,
  kind: row.kind,
  status: row.status,
  pageToken: row.page_token,
  lastEventUri: row.last_event_uri,
  events: row.events,
  invitees: row.invitees,
  applied: row.applied,
  duplicates: row.duplicates,
  skipped: row.skipped,
  calendlyRequests: row.calendly_requests,
  resumes: row.resumes,
  pausedUntil: row.paused_until,
  error: row.error,
  startedAt: row.started_at,
  updatedAt: row.updated_at,
  completedAt: row.completed_at,
});

// An error is stored for the sync state; Calendly's and our messages never carry a token.
const maxErrorLength = 500;

/** The imports table (migration 0004): one row per backfill request, updated as it goes. */
export function createImportCheckpoints(deps: { pool: Pool }): ImportCheckpoints {
  const { pool } = deps;
  return {
    async begin(input) {
      // A new row, or the existing one taken up again; `xmax <> 0` tells an update from an insert.
      const { rows } = await pool.query<Row & { resumed: boolean }>(
        `INSERT INTO imports (request_id, user_id, kind, status, window_start, window_end, run_id)
         VALUES ($1, $2, $3, 'running', $4, $5, gen_random_uuid())
         ON CONFLICT (request_id) DO UPDATE SET
           status = CASE WHEN imports.status = 'completed' THEN 'completed' ELSE 'running' END,
           resumes = imports.resumes + CASE WHEN imports.status = 'completed' THEN 0 ELSE 1 END,
           run_id = CASE WHEN imports.status = 'completed' THEN imports.run_id ELSE gen_random_uuid() END,
           paused_until = NULL,
           updated_at = now()
         RETURNING *, (xmax <> 0) AS resumed`,
        [input.requestId, input.userId, input.kind, input.windowStart, input.windowEnd],
      );
      const row = rows[0]!;
      return { record: toRecord(row), resumed: row.resumed };
    },

    async eventDone(run, done) {
      const { rowCount } = await pool.query(
        `UPDATE imports SET page_token = $2, last_event_uri = $3, events = events + 1,
           invitees = invitees + $4, applied = applied + $5, duplicates = duplicates + $6,
           skipped = skipped + $7, calendly_requests = calendly_requests + $8, updated_at = now()
         WHERE request_id = $1 AND run_id = $9`,
        [
          run.requestId,
          done.pageToken,
          done.eventUri,
          done.invitees,
          done.applied,
          done.duplicates,
          done.skipped,
          done.calendlyRequests,
          run.runId,
        ],
      );
      return rowCount === 1;
    },

    async pageStarted(run, pageToken, calendlyRequests) {
      const { rowCount } = await pool.query(
        `UPDATE imports SET page_token = $2, last_event_uri = NULL,
           calendly_requests = calendly_requests + $3, updated_at = now()
         WHERE request_id = $1 AND run_id = $4`,
        [run.requestId, pageToken, calendlyRequests, run.runId],
      );
      return rowCount === 1;
    },

    async paused(run, until) {
      const { rowCount } = await pool.query(
        'UPDATE imports SET paused_until = $2, updated_at = now() WHERE request_id = $1 AND run_id = $3',
        [run.requestId, until, run.runId],
      );
      return rowCount === 1;
    },

    async completed(run, calendlyRequests) {
      const { rowCount } = await pool.query(
        `UPDATE imports SET status = 'completed', error = NULL, paused_until = NULL,
           calendly_requests = calendly_requests + $2, completed_at = now(), updated_at = now()
         WHERE request_id = $1 AND run_id = $3`,
        [run.requestId, calendlyRequests, run.runId],
      );
      return rowCount === 1;
    },

    async failed(run, status, error) {
      const { rowCount } = await pool.query(
        `UPDATE imports SET status = $2, error = $3, paused_until = NULL, updated_at = now()
         WHERE request_id = $1 AND run_id = $4 AND status <> 'completed'`,
        [run.requestId, status, error.slice(0, maxErrorLength), run.runId],
      );
      return rowCount === 1;
    },

    async latest(userId, kind) {
      const { rows } = await pool.query<Row>(
        'SELECT * FROM imports WHERE user_id = $1 AND kind = $2 ORDER BY started_at DESC LIMIT 1',
        [userId, kind],
      );
      return rows[0] ? toRecord(rows[0]) : undefined;
    },
  };
}
