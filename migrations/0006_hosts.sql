-- The fleet: hosts, host groups with their own variables, and which host is in which group.
CREATE TABLE host_groups (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    variables TEXT NOT NULL DEFAULT '',
    notes TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE hosts (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    address TEXT NOT NULL,
    transport TEXT NOT NULL DEFAULT 'ssh' CHECK (transport IN ('ssh', 'local')),
    ssh_port INTEGER NOT NULL DEFAULT 22 CHECK (ssh_port BETWEEN 1 AND 65535),
    ssh_user TEXT NOT NULL DEFAULT 'root',
    become TEXT NOT NULL DEFAULT 'none' CHECK (become IN ('none', 'sudo')),
    tags TEXT NOT NULL DEFAULT '',
    variables TEXT NOT NULL DEFAULT '',
    metrics_url TEXT,
    notes TEXT NOT NULL DEFAULT '',
    enabled INTEGER NOT NULL DEFAULT 1,
    state TEXT NOT NULL DEFAULT 'unknown' CHECK (state IN ('up', 'down', 'unreachable', 'unknown')),
    state_detail TEXT,
    last_seen_at INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE host_group_members (
    host_id INTEGER NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    group_id INTEGER NOT NULL REFERENCES host_groups (id) ON DELETE CASCADE,
    PRIMARY KEY (host_id, group_id)
) WITHOUT ROWID;
CREATE INDEX host_group_members_by_group ON host_group_members (group_id);
