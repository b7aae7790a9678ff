-- A note given when a backup was started: it goes to `snapshot_notes`
-- once the run ended with its snapshot.
ALTER TABLE job_history ADD COLUMN note TEXT;
