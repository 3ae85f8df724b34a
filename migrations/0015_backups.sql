-- Backups with restic: repositories, plans and the record of each run. Snapshots themselves are restic's and are
-- read from the repository; only what Steward needs when the repository is out of reach is kept here.

CREATE TABLE backup_repositories (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    -- local: a directory on host_id's own disk; sftp: a directory on host_id, reached over SFTP with Steward's key.
    kind TEXT NOT NULL CHECK (kind IN ('local', 'sftp')),
    host_id INTEGER NOT NULL REFERENCES hosts(id) ON DELETE RESTRICT,
    path TEXT NOT NULL,
    -- AES-GCM with a key derived from DATA/secret.key; restic receives it through its environment or stdin.
    password_sealed BLOB NOT NULL,
    builtin TEXT UNIQUE,
    size_bytes INTEGER,
    snapshot_count INTEGER,
    status_at INTEGER,
    status_error TEXT,
    check_at INTEGER,
    check_ok INTEGER,
    check_message TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE backup_plans (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    host_id INTEGER NOT NULL REFERENCES hosts(id) ON DELETE RESTRICT,
    repository_id INTEGER NOT NULL REFERENCES backup_repositories(id) ON DELETE RESTRICT,
    paths TEXT NOT NULL,          -- JSON array of absolute paths
    excludes TEXT NOT NULL DEFAULT '[]',
    keep_last INTEGER,
    keep_hourly INTEGER,
    keep_daily INTEGER,
    keep_weekly INTEGER,
    keep_monthly INTEGER,
    keep_yearly INTEGER,
    keep_within TEXT NOT NULL DEFAULT '',
    prune_after_run INTEGER NOT NULL DEFAULT 1 CHECK (prune_after_run IN (0, 1)),
    pre_hook TEXT NOT NULL DEFAULT '[]',   -- JSON argv, empty for none
    post_hook TEXT NOT NULL DEFAULT '[]',
    verify_read_data_subset TEXT NOT NULL DEFAULT '',
    alert_after_hours INTEGER NOT NULL DEFAULT 26 CHECK (alert_after_hours BETWEEN 1 AND 8784),
    paused INTEGER NOT NULL DEFAULT 0 CHECK (paused IN (0, 1)),
    builtin TEXT UNIQUE,
    backup_schedule_id INTEGER REFERENCES schedules(id) ON DELETE SET NULL,
    verify_schedule_id INTEGER REFERENCES schedules(id) ON DELETE SET NULL,
    prune_schedule_id INTEGER REFERENCES schedules(id) ON DELETE SET NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX backup_plans_by_host ON backup_plans (host_id);

-- One row per backup, check, retention or restore job, with what restic reported.
CREATE TABLE backup_runs (
    job_id INTEGER PRIMARY KEY REFERENCES jobs(id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('backup', 'check', 'forget', 'restore')),
    plan_id INTEGER REFERENCES backup_plans(id) ON DELETE SET NULL,
    repository_id INTEGER REFERENCES backup_repositories(id) ON DELETE SET NULL,
    host_id INTEGER,
    started_at INTEGER NOT NULL,
    finished_at INTEGER,
    snapshot_id TEXT,
    files_new INTEGER,
    files_changed INTEGER,
    files_unmodified INTEGER,
    bytes_added INTEGER,
    bytes_processed INTEGER,
    duration_ms INTEGER,
    removed_snapshots INTEGER,
    detail TEXT
);
CREATE INDEX backup_runs_by_plan ON backup_runs (plan_id, kind, job_id);
CREATE INDEX backup_runs_by_repository ON backup_runs (repository_id, started_at);
