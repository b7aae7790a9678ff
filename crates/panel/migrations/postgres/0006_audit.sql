-- The audit log: who did what to which server, when and from where (one
-- row per audited request or operator command; rows are only added, and
-- removed after audit_retention_days). By server UUID and actor email, not
-- references: entries outlive servers and users.
CREATE TABLE audit_log (
    id BIGSERIAL PRIMARY KEY,
    at BIGINT NOT NULL,
    action TEXT NOT NULL,
    outcome TEXT NOT NULL,
    status BIGINT NOT NULL,
    actor TEXT,
    server_uuid TEXT,
    target TEXT,
    client TEXT,
    request_id TEXT
);
CREATE INDEX audit_log_at ON audit_log(at);
CREATE INDEX audit_log_server ON audit_log(server_uuid, id);
CREATE INDEX audit_log_actor ON audit_log(actor, id);
