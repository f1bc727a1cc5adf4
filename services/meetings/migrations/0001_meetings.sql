-- Up Migration

-- One row per platform user and Calendly scheduled event: two platform users who share a
-- scheduled event (a collective event, or host and invitee both connected) each get their own.
-- Field groups carry the Calendly timestamp they were last written from, so an older delivery
-- never overwrites a newer one whatever order they arrive in.
CREATE TABLE meetings (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id text NOT NULL,
  scheduled_event_uri text NOT NULL,
  status text NOT NULL CHECK (status IN ('active', 'canceled')),
  canceled_by text,
  cancel_reason text,
  canceler_type text,
  canceled_at timestamptz,

  -- Details: written from scheduled_event, versioned by (scheduled_event.updated_at, envelope created_at).
  name text NOT NULL DEFAULT '',
  event_type_uri text NOT NULL DEFAULT '',
  start_time timestamptz NOT NULL,
  end_time timestamptz NOT NULL,
  location_type text NOT NULL DEFAULT '',
  location text NOT NULL DEFAULT '',
  join_url text NOT NULL DEFAULT '',
  calendly_created_at timestamptz,
  calendly_updated_at timestamptz,
  details_version timestamptz NOT NULL,
  details_tiebreak timestamptz NOT NULL,

  -- What Calendly said about the scheduled event itself: canceled is final there.
  event_status text NOT NULL DEFAULT 'active' CHECK (event_status IN ('active', 'canceled')),
  event_canceled_by text,
  event_cancel_reason text,
  event_canceler_type text,
  event_canceled_at timestamptz,

  -- invitees_counter.active as of the newest envelope that carried it (group events).
  active_invitees integer,
  counter_version timestamptz,

  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (user_id, scheduled_event_uri)
);

-- ListMeetings: newest start first, keyset-paged by (start_time, id).
CREATE INDEX meetings_user_start ON meetings (user_id, start_time DESC, id DESC);

CREATE TABLE invitees (
  user_id text NOT NULL,
  uri text NOT NULL,
  meeting_id uuid NOT NULL REFERENCES meetings (id) ON DELETE CASCADE,

  -- Details: versioned by (invitee updated_at, envelope created_at).
  name text NOT NULL DEFAULT '',
  email text NOT NULL DEFAULT '',
  timezone text NOT NULL DEFAULT '',
  answers jsonb NOT NULL DEFAULT '[]',
  calendly_created_at timestamptz,
  calendly_updated_at timestamptz,
  details_version timestamptz NOT NULL,
  details_tiebreak timestamptz NOT NULL,

  -- Calendly never reactivates a canceled invitee (a reschedule makes a new one): canceled is final.
  status text NOT NULL CHECK (status IN ('active', 'canceled')),
  canceled_by text,
  cancel_reason text,
  canceler_type text,
  canceled_at timestamptz,
  rescheduled boolean NOT NULL DEFAULT false,

  -- No-show: marked and unmarked, versioned by the envelope's created_at.
  no_show boolean NOT NULL DEFAULT false,
  no_show_uri text,
  no_show_at timestamptz,
  no_show_version timestamptz NOT NULL,

  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (user_id, uri)
);

CREATE INDEX invitees_meeting ON invitees (user_id, meeting_id);

-- Reschedule links, recorded by whichever half (the old invitee's cancel or the new invitee's
-- create) arrives first; the other invitee may not exist here yet.
CREATE TABLE reschedules (
  user_id text NOT NULL,
  old_invitee_uri text NOT NULL,
  new_invitee_uri text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (user_id, old_invitee_uri, new_invitee_uri)
);

CREATE INDEX reschedules_new ON reschedules (user_id, new_invitee_uri);

-- Delivery keys already applied, per user: a redelivery finds its key and changes nothing.
CREATE TABLE inbox (
  user_id text NOT NULL,
  delivery_key text NOT NULL,
  event_type text NOT NULL,
  outcome text NOT NULL CHECK (outcome IN ('applied', 'ignored')),
  applied_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (user_id, delivery_key)
);
