-- Steward core schema: jobs, their logs, and schedules. Times are epoch milliseconds (UTC).

CREATE TABLE schedules (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    cron TEXT NOT NULL,
    time_zone TEXT NOT NULL DEFAULT 'UTC',
    jitter_seconds INTEGER NOT NULL DEFAULT 0 CHECK (jitter_seconds BETWEEN 0 AND 86400),
    catch_up TEXT NOT NULL DEFAULT 'none' CHECK (catch_up IN ('none', 'one')),
    concurrency TEXT NOT NULL DEFAULT 'forbid' CHECK (concurrency IN ('forbid', 'replace', 'allow')),
    job_kind TEXT NOT NULL,
    job_title TEXT NOT NULL,
    job_params TEXT NOT NULL DEFAULT '{}',
    job_host TEXT,
    owner TEXT NOT NULL DEFAULT 'system',
    enabled INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    last_fire_at INTEGER,
    next_fire_at INTEGER,
    next_due_at INTEGER,
    last_job_id INTEGER,
    last_outcome TEXT,
    last_outcome_at INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE jobs (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    title TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled', 'interrupted')),
    host TEXT,
    params TEXT NOT NULL DEFAULT '{}',
    started_by TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    schedule_id INTEGER REFERENCES schedules(id) ON DELETE SET NULL,
    progress_percent REAL CHECK (progress_percent IS NULL OR progress_percent BETWEEN 0 AND 100),
    progress_message TEXT NOT NULL DEFAULT '',
    error TEXT,
    cancel_requested_by TEXT,
    log_bytes INTEGER NOT NULL DEFAULT 0,
    log_truncated INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    started_at INTEGER,
    finished_at INTEGER
);
CREATE INDEX jobs_by_state ON jobs (state, id);
CREATE INDEX jobs_by_kind ON jobs (kind, id);
CREATE INDEX jobs_by_host ON jobs (host, id);
CREATE INDEX jobs_by_schedule ON jobs (schedule_id, id);

-- Output is stored in chunks of up to 64 KiB, never a row per line; the per-job cap is enforced by the writer.
CREATE TABLE job_log_chunks (
    job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    at INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (job_id, seq)
) WITHOUT ROWID;
