-- Notes on snapshots (the extension's `restic_backup_notes`), by the ID the
-- backups list shows (a full ID, or a short one an older install kept).
CREATE TABLE snapshot_notes (
    server_id BIGINT NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
    snapshot_id TEXT NOT NULL,
    note TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (server_id, snapshot_id)
);

-- Whose key a history row was (the extension keeps keys per owner).
ALTER TABLE restic_key_history ADD COLUMN owner_username TEXT;

-- Rows carried over from another install keep where they came from
-- (`extension:<id>`), so importing twice adds nothing.
ALTER TABLE job_history ADD COLUMN import_ref TEXT;
CREATE UNIQUE INDEX job_history_import ON job_history(server_id, import_ref);
