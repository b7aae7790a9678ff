-- Changes to the rows a running panel keeps in memory (sessions, users,
-- servers, subusers, nodes, repository keys, job history, notes) are
-- reported whichever process makes them (an admin command, another panel),
-- so a panel drops what it holds. Only a session's last_seen_at moving is
-- not reported: no panel needs it.
-- SQLite: a counter the panel reads every 0.1 s.
CREATE TABLE change_epoch (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    n BIGINT NOT NULL
);
INSERT INTO change_epoch (id, n) VALUES (1, 0);
CREATE TRIGGER users_inserted AFTER INSERT ON users BEGIN UPDATE change_epoch SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER users_updated AFTER UPDATE ON users BEGIN UPDATE change_epoch SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER users_deleted AFTER DELETE ON users BEGIN UPDATE change_epoch SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER servers_inserted AFTER INSERT ON servers BEGIN UPDATE change_epoch SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER servers_updated AFTER UPDATE ON servers BEGIN UPDATE change_epoch SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER servers_deleted AFTER DELETE ON servers BEGIN UPDATE change_epoch SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER subusers_inserted AFTER INSERT ON subusers BEGIN UPDATE change_epoch SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER subusers_updated AFTER UPDATE ON subusers BEGIN UPDATE change_epoch SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER subusers_deleted AFTER DELETE ON subusers BEGIN UPDATE change_epoch SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER nodes_inserted AFTER INSERT ON nodes BEGIN UPDATE change_epoch SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER nodes_updated AFTER UPDATE ON nodes BEGIN UPDATE change_epoch SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER nodes_deleted AFTER DELETE ON nodes BEGIN UPDATE change_epoch SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER restic_inserted AFTER INSERT ON restic BEGIN UPDATE change_epoch SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER restic_updated AFTER UPDATE ON restic BEGIN UPDATE change_epoch SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER restic_deleted AFTER DELETE ON restic BEGIN UPDATE change_epoch SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER job_history_inserted AFTER INSERT ON job_history BEGIN UPDATE change_epoch SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER job_history_updated AFTER UPDATE ON job_history BEGIN UPDATE change_epoch SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER job_history_deleted AFTER DELETE ON job_history BEGIN UPDATE change_epoch SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER snapshot_notes_inserted AFTER INSERT ON snapshot_notes BEGIN UPDATE change_epoch SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER snapshot_notes_updated AFTER UPDATE ON snapshot_notes BEGIN UPDATE change_epoch SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER snapshot_notes_deleted AFTER DELETE ON snapshot_notes BEGIN UPDATE change_epoch SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER sessions_inserted AFTER INSERT ON sessions BEGIN UPDATE change_epoch SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER sessions_updated AFTER UPDATE OF id_hash, user_id, csrf_token, created_at ON sessions BEGIN UPDATE change_epoch SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER sessions_deleted AFTER DELETE ON sessions BEGIN UPDATE change_epoch SET n = n + 1 WHERE id = 1; END;
