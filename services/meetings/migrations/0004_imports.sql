-- Up Migration

-- One row per backfill request (the initial import on connect, or a gap after a hook was down):
-- where it has got to, so a crash or restart continues from the last scheduled event it
-- finished instead of starting over, and what the connection's sync state shows.
CREATE TABLE imports (
  request_id text PRIMARY KEY,
  user_id text NOT NULL,
  kind text NOT NULL CHECK (kind IN ('initial_import', 'gap')),
  status text NOT NULL CHECK (status IN ('running', 'retrying', 'completed', 'failed')),
  window_start timestamptz NOT NULL,
  window_end timestamptz NOT NULL,
  -- Checkpoint: the scheduled-events page being worked through (NULL: the first page) and the
  -- last event of it whose every invitee is applied. Calendly's page tokens are opaque; one it
  -- no longer accepts restarts the window, which re-applies nothing (each invitee's key is in
  -- the inbox).
  page_token text,
  last_event_uri text,
  events integer NOT NULL DEFAULT 0,
  invitees integer NOT NULL DEFAULT 0,
  applied integer NOT NULL DEFAULT 0,
  duplicates integer NOT NULL DEFAULT 0,
  skipped integer NOT NULL DEFAULT 0,
  calendly_requests integer NOT NULL DEFAULT 0,
  resumes integer NOT NULL DEFAULT 0,
  -- While waiting for the user's Calendly rate-limit window to reset.
  paused_until timestamptz,
  error text,
  started_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  completed_at timestamptz
);

CREATE INDEX imports_user ON imports (user_id, kind, started_at DESC);
