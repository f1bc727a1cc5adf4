-- Up Migration

-- The run that owns an import's checkpoint: each run that takes the import up (begin) gets a new
-- id, and every checkpoint write names it, so a run that was taken over (it lost its lock with
-- its database connection, and another run began) changes nothing and stops.
ALTER TABLE imports ADD COLUMN run_id uuid;
