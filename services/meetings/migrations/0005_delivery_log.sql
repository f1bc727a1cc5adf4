-- Up Migration

-- The delivery log: one row per Calendly delivery this service received for a user (from the
-- events stream, never from a backfill) and what became of it, for the user and for operators.
-- Unlike the inbox (one row per delivery key, there to recognise repeats), every arrival has a
-- row: a repeat is logged as 'duplicate'. Only what is needed to explain a delivery: no payload.
CREATE TABLE delivery_log (
  id bigserial PRIMARY KEY,
  user_id text NOT NULL,
  delivery_key text NOT NULL,
  event_type text NOT NULL,
  outcome text NOT NULL CHECK (outcome IN ('applied', 'duplicate', 'ignored', 'dead_lettered')),
  -- When the gateway accepted the delivery from Calendly.
  received_at timestamptz NOT NULL,
  -- When this service committed the outcome (clock time inside the transaction).
  recorded_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- A user's log, newest first, keyset-paged by id.
CREATE INDEX delivery_log_user ON delivery_log (user_id, id DESC);
-- Retention deletes by age.
CREATE INDEX delivery_log_recorded_at ON delivery_log (recorded_at);
