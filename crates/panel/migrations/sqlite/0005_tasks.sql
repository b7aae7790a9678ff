-- Work the panel does after answering 202 (deleting a server waits for its
-- node to archive the repository). Kept after the server is gone, so the
-- admin who asked can read how it ended; by server UUID, not a reference.
-- agent_job_id: the node's job it follows, so deleting again picks it up;
-- updated_at: renewed while a panel follows it (a stale one was abandoned).
CREATE TABLE panel_tasks (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    server_uuid TEXT NOT NULL,
    status TEXT NOT NULL,
    agent_job_id TEXT,
    error_code TEXT,
    error TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    finished_at INTEGER
);
CREATE INDEX panel_tasks_server ON panel_tasks(server_uuid, created_at);
