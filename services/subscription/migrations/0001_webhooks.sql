-- Up Migration

-- One row per webhook subscription we own (or adopted from the seed's single URL).
-- hook_id is the random id in the callback path; it is the lookup key of every delivery.
CREATE TABLE webhooks (
  hook_id text PRIMARY KEY CHECK (hook_id ~ '^[A-Za-z0-9_-]{22,64}$'),
  user_id text NOT NULL CHECK (user_id <> ''),
  calendly_user_uri text NOT NULL CHECK (calendly_user_uri <> ''),
  calendly_organization_uri text NOT NULL CHECK (calendly_organization_uri <> ''),
  -- Null until Calendly confirmed the create (or while a create is in doubt).
  calendly_subscription_uri text UNIQUE,
  callback_url text NOT NULL,
  events text[] NOT NULL CHECK (cardinality(events) > 0),
  scope text NOT NULL DEFAULT 'user' CHECK (scope IN ('user', 'organization')),
  -- Seed-era subscriptions on the single URL: resolved by created_by, never through a path id.
  legacy boolean NOT NULL DEFAULT false,
  state text NOT NULL CHECK (state IN ('pending', 'active', 'disabled', 'missing', 'removing', 'failed')),
  signing_key_source text NOT NULL CHECK (signing_key_source IN ('subscription', 'application')),
  -- AES-256-GCM sealed (service-kit Sealer, context = hook_id); null when the application key signs.
  signing_key_sealed text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  last_verified_at timestamptz,
  last_delivery_at timestamptz,
  last_error text,
  -- First time reconcile saw it disabled or missing (the start of a delivery gap).
  down_since timestamptz,
  -- A delivery gap this hook replaced and whose backfill is not yet published.
  backfill_from timestamptz,
  CHECK ((signing_key_source = 'subscription') = (signing_key_sealed IS NOT NULL))
);

CREATE INDEX webhooks_user_id ON webhooks (user_id);
-- The legacy single URL resolves a delivery by its envelope's created_by through this index.
CREATE UNIQUE INDEX webhooks_legacy_creator ON webhooks (calendly_user_uri) WHERE legacy;
-- The organization-scoped legacy subscription resolves its user by event membership.
CREATE INDEX webhooks_calendly_user ON webhooks (calendly_user_uri);

-- Subscriptions that could not be deleted at Calendly when their user disconnected; reconcile retries.
CREATE TABLE remote_leftovers (
  calendly_subscription_uri text PRIMARY KEY,
  user_id text NOT NULL,
  recorded_at timestamptz NOT NULL DEFAULT now(),
  attempts integer NOT NULL DEFAULT 0,
  last_error text
);

-- Every replica caches hooks in memory; a change that can alter a verification tells them all
-- at commit. Bookkeeping columns (last_delivery_at, last_verified_at, last_error) do not.
CREATE FUNCTION notify_webhook_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    PERFORM pg_notify(TG_TABLE_SCHEMA || '.webhooks', OLD.hook_id);
    RETURN OLD;
  END IF;
  PERFORM pg_notify(TG_TABLE_SCHEMA || '.webhooks', NEW.hook_id);
  RETURN NEW;
END;
$$;

CREATE TRIGGER webhooks_notify_insert_delete AFTER INSERT OR DELETE ON webhooks
  FOR EACH ROW EXECUTE FUNCTION notify_webhook_change();

CREATE TRIGGER webhooks_notify_update AFTER UPDATE ON webhooks
  FOR EACH ROW
  WHEN (
    (OLD.state, OLD.user_id, OLD.calendly_user_uri, OLD.events, OLD.legacy, OLD.scope, OLD.signing_key_source,
      OLD.signing_key_sealed)
    IS DISTINCT FROM
    (NEW.state, NEW.user_id, NEW.calendly_user_uri, NEW.events, NEW.legacy, NEW.scope, NEW.signing_key_source,
      NEW.signing_key_sealed)
  )
  EXECUTE FUNCTION notify_webhook_change();
