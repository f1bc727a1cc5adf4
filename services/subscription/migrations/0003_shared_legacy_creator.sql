-- Up Migration

-- An organization-wide legacy subscription is shared by every user of the organization, so a
-- disconnect of its creator must leave it in place (only the retire command removes it). What the
-- disconnect does take away is the creator's own claim on it: deliveries for their meetings must
-- no longer be routed to them, and they no longer count as someone waiting for a hook.
ALTER TABLE webhooks ADD COLUMN creator_connected boolean NOT NULL DEFAULT true;
