-- How many progress events a job has stored, so that a connector cannot grow a job's history
-- without bound (see store::MAX_PROGRESS_EVENTS).
ALTER TABLE jobs ADD COLUMN progress_events INTEGER NOT NULL DEFAULT 0;
