-- Retention: one policy per data class, legal holds, job acknowledgement, and deletion of old audit events only by
-- the retention enforcer.

-- `policy` is the JSON in force. A saved change waits in `pending` until `pending_at` (the grace window), so an
-- admin can take it back before anything is deleted under it.
CREATE TABLE retention_policies (
    data_class TEXT PRIMARY KEY,
    policy TEXT NOT NULL,
    pending TEXT,
    pending_at INTEGER,
    pending_by TEXT,
    updated_at INTEGER NOT NULL,
    updated_by TEXT NOT NULL
) WITHOUT ROWID;

-- A legal hold stops all deletion for a host (NULL: every host) and/or a time range (NULL ends: open-ended).
CREATE TABLE retention_holds (
    id INTEGER PRIMARY KEY,
    host_id INTEGER REFERENCES hosts (id) ON DELETE CASCADE,
    from_ms INTEGER,
    to_ms INTEGER,
    reason TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    released_at INTEGER,
    released_by TEXT,
    CHECK (from_ms IS NULL OR to_ms IS NULL OR from_ms <= to_ms)
);

-- One row per enforcement run and data class: what went and what the file gave back.
CREATE TABLE retention_runs (
    id INTEGER PRIMARY KEY,
    job_id INTEGER,
    data_class TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    ended_at INTEGER,
    rows_deleted INTEGER NOT NULL DEFAULT 0,
    bytes_deleted INTEGER NOT NULL DEFAULT 0,
    detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX retention_runs_by_class ON retention_runs (data_class, id);

-- Failed jobs can be acknowledged (event-based retention keeps their logs until then); a job whose log was reduced to
-- its summary (the middle tier) records when.
ALTER TABLE jobs ADD COLUMN acknowledged_at INTEGER;
ALTER TABLE jobs ADD COLUMN acknowledged_by TEXT;
ALTER TABLE jobs ADD COLUMN log_pruned_at INTEGER;
CREATE INDEX jobs_by_finish ON jobs (finished_at);
CREATE INDEX metric_chunks_by_end ON metric_chunks (resolution, end_ms);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);

-- Audit events stay append-only for the application. The retention enforcer opens this gate inside the transaction
-- that deletes expired events and closes it before committing.
CREATE TABLE retention_gate (data_class TEXT PRIMARY KEY) WITHOUT ROWID;
DROP TRIGGER audit_events_no_delete;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
WHEN NOT EXISTS (SELECT 1 FROM retention_gate WHERE data_class = 'audit')
BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only; only the retention policy removes expired ones');
END;
