-- Changes to the rows a running panel keeps in memory (sessions, users,
-- servers, subusers, nodes, repository keys, job history, notes) are
-- reported whichever process makes them (an admin command, another panel),
-- so a panel drops what it holds. Only a session's last_seen_at moving is
-- not reported: no panel needs it.
-- PostgreSQL: a notification on the channel restic_backups_changes,
-- delivered when the changing transaction commits (none if it rolls back).
CREATE FUNCTION restic_backups_report_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('restic_backups_changes', TG_TABLE_NAME);
    RETURN NULL;
END
$$;
CREATE TRIGGER users_changed AFTER INSERT OR UPDATE OR DELETE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION restic_backups_report_change();
CREATE TRIGGER servers_changed AFTER INSERT OR UPDATE OR DELETE ON servers
    FOR EACH STATEMENT EXECUTE FUNCTION restic_backups_report_change();
CREATE TRIGGER subusers_changed AFTER INSERT OR UPDATE OR DELETE ON subusers
    FOR EACH STATEMENT EXECUTE FUNCTION restic_backups_report_change();
CREATE TRIGGER nodes_changed AFTER INSERT OR UPDATE OR DELETE ON nodes
    FOR EACH STATEMENT EXECUTE FUNCTION restic_backups_report_change();
CREATE TRIGGER restic_changed AFTER INSERT OR UPDATE OR DELETE ON restic
    FOR EACH STATEMENT EXECUTE FUNCTION restic_backups_report_change();
CREATE TRIGGER job_history_changed AFTER INSERT OR UPDATE OR DELETE ON job_history
    FOR EACH STATEMENT EXECUTE FUNCTION restic_backups_report_change();
CREATE TRIGGER snapshot_notes_changed AFTER INSERT OR UPDATE OR DELETE ON snapshot_notes
    FOR EACH STATEMENT EXECUTE FUNCTION restic_backups_report_change();
CREATE TRIGGER sessions_changed AFTER INSERT OR DELETE OR UPDATE OF id_hash, user_id, csrf_token, created_at ON sessions
    FOR EACH STATEMENT EXECUTE FUNCTION restic_backups_report_change();
-- TRUNCATE (an operator's, in psql) is reported too.
CREATE TRIGGER users_truncated AFTER TRUNCATE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION restic_backups_report_change();
CREATE TRIGGER servers_truncated AFTER TRUNCATE ON servers
    FOR EACH STATEMENT EXECUTE FUNCTION restic_backups_report_change();
CREATE TRIGGER subusers_truncated AFTER TRUNCATE ON subusers
    FOR EACH STATEMENT EXECUTE FUNCTION restic_backups_report_change();
CREATE TRIGGER nodes_truncated AFTER TRUNCATE ON nodes
    FOR EACH STATEMENT EXECUTE FUNCTION restic_backups_report_change();
CREATE TRIGGER restic_truncated AFTER TRUNCATE ON restic
    FOR EACH STATEMENT EXECUTE FUNCTION restic_backups_report_change();
CREATE TRIGGER job_history_truncated AFTER TRUNCATE ON job_history
    FOR EACH STATEMENT EXECUTE FUNCTION restic_backups_report_change();
CREATE TRIGGER snapshot_notes_truncated AFTER TRUNCATE ON snapshot_notes
    FOR EACH STATEMENT EXECUTE FUNCTION restic_backups_report_change();
CREATE TRIGGER sessions_truncated AFTER TRUNCATE ON sessions
    FOR EACH STATEMENT EXECUTE FUNCTION restic_backups_report_change();
