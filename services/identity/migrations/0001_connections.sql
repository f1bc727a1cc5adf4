-- Up Migration

-- One Calendly connection per platform user. Every secret column holds a Sealer value
-- (AES-256-GCM, key id inside, the user id as context): never a plaintext token.
CREATE TABLE connections (
  user_id text PRIMARY KEY,
  kind text NOT NULL CHECK (kind IN ('oauth', 'personal_token')),
  state text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'reauth_required')),
  calendly_user_uri text NOT NULL,
  calendly_organization_uri text NOT NULL,
  scope text NOT NULL DEFAULT '',
  access_token_sealed text NOT NULL,
  refresh_token_sealed text,
  -- When this service received the access token and when it expires: the lifetime bounds how
  -- much validity a caller may demand before a refresh would never satisfy it.
  access_token_issued_at timestamptz,
  access_token_expires_at timestamptz,
  reauth_reason text,
  connected_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  -- The same Calendly account may belong to one platform user only.
  CONSTRAINT connections_calendly_user_uri_key UNIQUE (calendly_user_uri),
  CONSTRAINT connections_oauth_tokens CHECK (
    (kind = 'oauth') = (refresh_token_sealed IS NOT NULL AND access_token_expires_at IS NOT NULL AND access_token_issued_at IS NOT NULL)
  )
);

CREATE INDEX connections_state_idx ON connections (kind, state);

-- A pending OAuth connect. The state is a bearer secret, so only its SHA-256 is stored; the
-- PKCE verifier never leaves this service.
CREATE TABLE oauth_states (
  state_hash text PRIMARY KEY,
  user_id text NOT NULL,
  redirect_uri text NOT NULL,
  code_verifier_sealed text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL
);

CREATE INDEX oauth_states_expires_at_idx ON oauth_states (expires_at);

-- Calls to Calendly's token endpoint in the last minute, per platform user, shared by every
-- replica: Calendly allows at most 8 per user per minute.
CREATE TABLE token_requests (
  user_id text NOT NULL,
  requested_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE INDEX token_requests_user_idx ON token_requests (user_id, requested_at);
CREATE INDEX token_requests_requested_at_idx ON token_requests (requested_at);
