-- Up Migration

-- The change feed's transactional outbox: one row per committed change to a user's meetings,
-- written in the change's own transaction (so a rolled-back change leaves no row and a committed
-- one always has its row). The relay publishes rows to JetStream in seq order and deletes them;
-- seq order is commit order per user because every change takes its user's lock first.
CREATE TABLE outbox (
  seq bigserial PRIMARY KEY,
  -- The JetStream message id: a row published twice (the relay died before deleting it) is
  -- stored once.
  change_id uuid NOT NULL UNIQUE,
  user_id text NOT NULL,
  -- calsync.meetings.v1.MeetingChanged, encoded.
  message bytea NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX outbox_user ON outbox (user_id);
