-- Up Migration

-- The legacy single URL finds a hook by its creator (the envelope's created_by), so replicas
-- cache legacy hooks under 'legacy:<calendly_user_uri>' rather than under their hook id. A
-- change to a legacy row must name that key too, or a replica would keep serving the old row.
CREATE OR REPLACE FUNCTION notify_webhook_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP <> 'INSERT' THEN
    PERFORM pg_notify(TG_TABLE_SCHEMA || '.webhooks', OLD.hook_id);
    IF OLD.legacy THEN
      PERFORM pg_notify(TG_TABLE_SCHEMA || '.webhooks', 'legacy:' || OLD.calendly_user_uri);
    END IF;
  END IF;
  IF TG_OP <> 'DELETE' THEN
    PERFORM pg_notify(TG_TABLE_SCHEMA || '.webhooks', NEW.hook_id);
    IF NEW.legacy THEN
      PERFORM pg_notify(TG_TABLE_SCHEMA || '.webhooks', 'legacy:' || NEW.calendly_user_uri);
    END IF;
  END IF;
  RETURN NULL;
END;
$$;
