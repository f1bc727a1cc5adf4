-- Up Migration

-- What operators see of each connection's refreshes (IdentityAdminService.ListConnections): when
-- the access token was last refreshed at Calendly, and the last refresh that produced no token
-- (a reason such as invalid_grant or http_503, never a secret) and when.
ALTER TABLE connections
  ADD COLUMN last_refreshed_at timestamptz,
  ADD COLUMN last_refresh_error text,
  ADD COLUMN last_refresh_error_at timestamptz;

-- Operators page through one state's connections in user id order (e.g. every reauth_required).
CREATE INDEX connections_state_user_idx ON connections (state, user_id);
