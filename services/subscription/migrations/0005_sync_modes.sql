-- Up Migration

-- How each user's meetings reach calsync: by their webhook, or by polling their Calendly because
-- Calendly refused them a webhook (plan or role). One row per user with a sync; none: no sync.
CREATE TABLE sync_modes (
  user_id text PRIMARY KEY CHECK (user_id <> ''),
  calendly_user_uri text NOT NULL CHECK (calendly_user_uri <> ''),
  mode text NOT NULL CHECK (mode IN ('webhook', 'polling')),
  -- Why, safe to show the user (Calendly's refusal); empty for webhook.
  reason text NOT NULL DEFAULT '',
  since timestamptz NOT NULL DEFAULT now(),
  -- Polling only: when the user's next short poll and next full sweep are due, and the last ones.
  next_poll_at timestamptz,
  next_sweep_at timestamptz,
  last_polled_at timestamptz,
  last_swept_at timestamptz,
  CHECK (mode = 'webhook' OR (next_poll_at IS NOT NULL AND next_sweep_at IS NOT NULL))
);

-- The poller takes due users (a short poll or a sweep) in due order.
CREATE INDEX sync_modes_poll_due ON sync_modes (LEAST(next_poll_at, next_sweep_at)) WHERE mode = 'polling';

-- Users synced by a webhook before this table existed.
INSERT INTO sync_modes (user_id, calendly_user_uri, mode)
SELECT DISTINCT ON (user_id) user_id, calendly_user_uri, 'webhook'
FROM webhooks WHERE state = 'active'
ORDER BY user_id, legacy, created_at DESC;
