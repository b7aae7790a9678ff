-- Pterodactyl mode: rows synced from Pterodactyl carry its id (NULL for
-- local rows), so renames and e-mail changes follow the same row.
ALTER TABLE users ADD COLUMN ptero_id BIGINT;
ALTER TABLE users ADD COLUMN username TEXT;
-- Whether the backups page also shows Pterodactyl's own backups.
ALTER TABLE users ADD COLUMN show_ptero_backups BIGINT NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX users_ptero_id ON users(ptero_id);

ALTER TABLE nodes ADD COLUMN ptero_id BIGINT;
-- Pterodactyl's `updated_at` of the node when its configuration (and Wings
-- token) was last read: unchanged means the token is unchanged.
ALTER TABLE nodes ADD COLUMN ptero_updated_at TEXT;
CREATE UNIQUE INDEX nodes_ptero_id ON nodes(ptero_id);

ALTER TABLE servers ADD COLUMN ptero_id BIGINT;
CREATE UNIQUE INDEX servers_ptero_id ON servers(ptero_id);

CREATE TABLE pterodactyl_syncs (
    id BIGSERIAL PRIMARY KEY,
    origin TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    ok BIGINT NOT NULL,
    rows_written BIGINT NOT NULL,
    summary TEXT NOT NULL,
    errors TEXT NOT NULL
);
