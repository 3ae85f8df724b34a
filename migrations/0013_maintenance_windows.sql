-- Recurring maintenance windows per host group: while one is open, the group's hosts send no notifications
-- (evaluation goes on, so the alerts page still shows what is wrong).
CREATE TABLE maintenance_windows (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    host_group TEXT NOT NULL,
    cron TEXT NOT NULL,
    duration_minutes INTEGER NOT NULL CHECK (duration_minutes BETWEEN 1 AND 10080),
    time_zone TEXT NOT NULL DEFAULT 'UTC',
    enabled INTEGER NOT NULL DEFAULT 1,
    comment TEXT NOT NULL DEFAULT '',
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
