-- Server-side sessions. The cookie holds a random 256-bit ID; only its SHA-256 is stored, so a copy of the
-- database does not yield usable cookies.
CREATE TABLE sessions (
    id_hash TEXT PRIMARY KEY,
    user_name TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    source TEXT,
    user_agent TEXT,
    csrf_token TEXT NOT NULL,
    revoked_at INTEGER,
    revoked_by TEXT
) WITHOUT ROWID;
CREATE INDEX sessions_by_user ON sessions (user_name, last_seen_at);
