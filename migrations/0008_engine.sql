-- The engine's results: which commit of the config repo a job ran, the per-host summary, and every task event.
ALTER TABLE jobs ADD COLUMN config_commit TEXT;

CREATE TABLE job_host_results (
    job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    host TEXT NOT NULL,
    ok INTEGER NOT NULL DEFAULT 0,
    changed INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    unreachable INTEGER NOT NULL DEFAULT 0,
    skipped INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL CHECK (status IN ('ok', 'changed', 'failed', 'unreachable', 'skipped')),
    message TEXT,
    PRIMARY KEY (job_id, host)
) WITHOUT ROWID;

CREATE TABLE job_task_events (
    job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    at INTEGER NOT NULL,
    host TEXT NOT NULL,
    task TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ok', 'changed', 'failed', 'unreachable', 'skipped')),
    detail TEXT,
    PRIMARY KEY (job_id, seq)
) WITHOUT ROWID;
CREATE INDEX job_task_events_by_host ON job_task_events (job_id, host);
