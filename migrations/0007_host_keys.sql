-- SSH host keys, trusted explicitly on first use. A host's trusted keys go into Steward's own known_hosts; a key
-- presented that differs from them blocks every job to the host until an admin re-trusts it.
CREATE TABLE host_keys (
    host_id INTEGER NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    key_type TEXT NOT NULL,
    public_key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('presented', 'trusted')),
    seen_at INTEGER NOT NULL,
    trusted_at INTEGER,
    trusted_by TEXT,
    PRIMARY KEY (host_id, key_type, status)
) WITHOUT ROWID;
