-- Keys of deleted servers' repositories outlive the server, so an archived
-- repository can always be opened again. Deleting the archive deletes its
-- record. Sealed values keep their `server:<uuid>` binding.
CREATE TABLE archived_keys (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    server_uuid TEXT NOT NULL,
    server_name TEXT NOT NULL,
    node_name TEXT NOT NULL,
    -- The agent's name of the archived repository; NULL when the server
    -- was force-deleted because its node was gone.
    archive_name TEXT,
    encryption_key_enc TEXT NOT NULL,
    pending_key_enc TEXT,
    archived_at INTEGER NOT NULL
);
CREATE INDEX archived_keys_node ON archived_keys(node_name, archive_name);

CREATE TABLE archived_key_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    archived_key_id INTEGER NOT NULL REFERENCES archived_keys(id) ON DELETE CASCADE,
    encryption_key_enc TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    retired_at INTEGER
);
CREATE INDEX archived_key_history_key ON archived_key_history(archived_key_id);
