-- Up Migration

-- Which Calendly account of a user has had its initial import requested: connecting (or
-- connecting another account) asks meetings once for everything Calendly already holds.
-- Disconnecting forgets it, so connecting again imports again.
CREATE TABLE initial_imports (
  user_id text NOT NULL,
  calendly_user_uri text NOT NULL,
  request_id text NOT NULL,
  requested_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (user_id, calendly_user_uri)
);
