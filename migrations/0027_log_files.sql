-- Plain log files under /var/log that Steward reads on the hosts of a group (for hosts without journald, or programs
-- that write their own files). Where each file was read to is kept with the host's 'file' source in log_sources.
CREATE TABLE log_files (
    id INTEGER PRIMARY KEY,
    -- A host group's name; '' for every host.
    host_group TEXT NOT NULL DEFAULT '',
    -- An absolute path under /var/log; '*' and '?' may appear in the file name.
    path TEXT NOT NULL,
    comment TEXT NOT NULL DEFAULT '',
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (host_group, path)
);
