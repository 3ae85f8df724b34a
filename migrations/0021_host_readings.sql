-- The newest quick reading of one kind from one host (its services, ...): what a read-only command on the host
-- printed, parsed, with when it was read and why it failed. One row per host and kind; a refresh replaces it, so the
-- table never grows past hosts x kinds.
CREATE TABLE host_readings (
    host_id INTEGER NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    read_at INTEGER NOT NULL,
    body TEXT NOT NULL,
    error TEXT,
    PRIMARY KEY (host_id, kind)
) WITHOUT ROWID;
