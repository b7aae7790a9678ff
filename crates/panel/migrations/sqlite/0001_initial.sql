CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    email TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    root_admin INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);

CREATE TABLE sessions (
    id_hash TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    csrf_token TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL
);
CREATE INDEX sessions_user ON sessions(user_id);

CREATE TABLE nodes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    url TEXT NOT NULL,
    token_enc TEXT NOT NULL,
    ca_pem TEXT,
    browser_downloads INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL
);

CREATE TABLE servers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    owner_id INTEGER NOT NULL REFERENCES users(id),
    node_id INTEGER NOT NULL REFERENCES nodes(id),
    backup_limit INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);

CREATE TABLE subusers (
    server_id INTEGER NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    permissions TEXT NOT NULL,
    PRIMARY KEY (server_id, user_id)
);

CREATE TABLE restic (
    server_id INTEGER PRIMARY KEY REFERENCES servers(id) ON DELETE CASCADE,
    encryption_key_enc TEXT NOT NULL,
    -- A key being rotated in: kept until the rotation is confirmed, so an
    -- interrupted rotation can be finished with the same key.
    pending_key_enc TEXT,
    updated_at INTEGER NOT NULL
);

CREATE TABLE restic_key_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    server_id INTEGER NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
    encryption_key_enc TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    retired_at INTEGER
);

CREATE TABLE restic_policies (
    server_id INTEGER PRIMARY KEY REFERENCES servers(id) ON DELETE CASCADE,
    enabled INTEGER NOT NULL DEFAULT 0,
    interval_value INTEGER NOT NULL,
    interval_unit TEXT NOT NULL,
    keep_last INTEGER,
    keep_daily INTEGER,
    keep_weekly INTEGER,
    keep_monthly INTEGER,
    keep_yearly INTEGER,
    keep_within TEXT,
    -- Runs sit on the grid anchor_at + k * interval (no drift).
    anchor_at INTEGER,
    next_run_at INTEGER,
    last_run_at INTEGER,
    last_status TEXT,
    last_message TEXT,
    last_snapshot_id TEXT,
    failures INTEGER NOT NULL DEFAULT 0,
    updated_at INTEGER NOT NULL
);
CREATE INDEX restic_policies_due ON restic_policies(enabled, next_run_at);

CREATE TABLE job_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    server_id INTEGER NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    origin TEXT NOT NULL,
    agent_job_id TEXT,
    status TEXT NOT NULL,
    snapshot_id TEXT,
    error TEXT,
    started_at INTEGER NOT NULL,
    finished_at INTEGER
);
CREATE INDEX job_history_server ON job_history(server_id, started_at);
