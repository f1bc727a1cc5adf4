-- Up Migration
-- The last delivery to a hook that was refused (a known hook, a bad signature, timestamp or
-- payload), so a user and an operator can see deliveries are arriving but failing; written in
-- batches by the delivery recorder, never on the request path.
ALTER TABLE webhooks ADD COLUMN last_refused_at timestamptz, ADD COLUMN last_refusal text;
