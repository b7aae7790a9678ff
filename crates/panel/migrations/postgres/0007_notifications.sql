-- Notifications: channels (their target sealed like keys), the outbox
-- (every message until it is delivered or given up, so a restart or a
-- receiver that is down loses nothing), and which "no backup for N hours"
-- stretch each channel was told about (told once per stretch). A channel
-- with a server_uuid is that server owner's own (a Discord webhook): it is
-- sent to only while owner_id still owns the server.
CREATE TABLE notification_channels (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    target_enc TEXT NOT NULL,
    target_shown TEXT NOT NULL,
    events TEXT NOT NULL,
    missing_hours BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    last_error TEXT,
    server_uuid TEXT,
    owner_id BIGINT
);
CREATE INDEX notification_channels_server ON notification_channels(server_uuid);
CREATE TABLE notification_outbox (
    id BIGSERIAL PRIMARY KEY,
    channel_id TEXT NOT NULL REFERENCES notification_channels(id) ON DELETE CASCADE,
    event TEXT NOT NULL,
    server_uuid TEXT,
    payload TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    next_at BIGINT NOT NULL,
    lease_until BIGINT NOT NULL,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    sent_at BIGINT
);
CREATE INDEX notification_outbox_due ON notification_outbox(status, next_at);
CREATE TABLE notification_missing (
    channel_id TEXT NOT NULL REFERENCES notification_channels(id) ON DELETE CASCADE,
    server_uuid TEXT NOT NULL,
    since BIGINT NOT NULL,
    PRIMARY KEY (channel_id, server_uuid)
);
-- The newest successful backup of each server, read every few minutes
-- for "no backup for N hours".
CREATE INDEX job_history_success ON job_history(server_id, kind, status, finished_at);
