CREATE TABLE users (
    id BIGSERIAL PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    root_admin BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);

CREATE TABLE sessions (
    id_hash TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    csrf_token TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions(user_id);

CREATE TABLE nodes (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    url TEXT NOT NULL,
    token_enc TEXT NOT NULL,
    ca_pem TEXT,
    browser_downloads BIGINT NOT NULL DEFAULT 1,
    created_at BIGINT NOT NULL
);

CREATE TABLE servers (
    id BIGSERIAL PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    owner_id BIGINT NOT NULL REFERENCES users(id),
    node_id BIGINT NOT NULL REFERENCES nodes(id),
    backup_limit BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);

CREATE TABLE subusers (
    server_id BIGINT NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    permissions TEXT NOT NULL,
    PRIMARY KEY (server_id, user_id)
);

CREATE TABLE restic (
    server_id BIGINT PRIMARY KEY REFERENCES servers(id) ON DELETE CASCADE,
    encryption_key_enc TEXT NOT NULL,
    -- A key being rotated in: kept until the rotation is confirmed, so an
    -- interrupted rotation can be finished with the same key.
    pending_key_enc TEXT,
    updated_at BIGINT NOT NULL
);

CREATE TABLE restic_key_history (
    id BIGSERIAL PRIMARY KEY,
    server_id BIGINT NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
    encryption_key_enc TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    retired_at BIGINT
);

CREATE TABLE restic_policies (
    server_id BIGINT PRIMARY KEY REFERENCES servers(id) ON DELETE CASCADE,
    enabled BIGINT NOT NULL DEFAULT 0,
    interval_value BIGINT NOT NULL,
    interval_unit TEXT NOT NULL,
    keep_last BIGINT,
    keep_daily BIGINT,
    keep_weekly BIGINT,
    keep_monthly BIGINT,
    keep_yearly BIGINT,
    keep_within TEXT,
    -- Runs sit on the grid anchor_at + k * interval (no drift).
    anchor_at BIGINT,
    next_run_at BIGINT,
    last_run_at BIGINT,
    last_status TEXT,
    last_message TEXT,
    last_snapshot_id TEXT,
    failures BIGINT NOT NULL DEFAULT 0,
    updated_at BIGINT NOT NULL
);
CREATE INDEX restic_policies_due ON restic_policies(enabled, next_run_at);

CREATE TABLE job_history (
    id BIGSERIAL PRIMARY KEY,
    server_id BIGINT NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    origin TEXT NOT NULL,
    agent_job_id TEXT,
    status TEXT NOT NULL,
    snapshot_id TEXT,
    error TEXT,
    started_at BIGINT NOT NULL,
    finished_at BIGINT
);
CREATE INDEX job_history_server ON job_history(server_id, started_at);
