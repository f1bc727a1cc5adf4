-- Up Migration
-- Inbox retention deletes by age.
CREATE INDEX inbox_applied_at ON inbox (applied_at);
