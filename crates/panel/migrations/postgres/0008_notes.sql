-- A note given when a backup was started: it goes to `snapshot_notes`
-- once the run ended with its snapshot.
ALTER TABLE job_history ADD COLUMN note TEXT;

-- The list asks who started the backups of its page by snapshot.
CREATE INDEX job_history_snapshot ON job_history(server_id, snapshot_id);
