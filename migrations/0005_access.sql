-- Access control: role grants, API tokens, TOTP second factors, and what a session knows about its user.

-- A role granted to a Unix user or a Unix group (groups are resolved when the user signs in).
CREATE TABLE role_grants (
    role TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'approver', 'viewer', 'auditor')),
    principal_kind TEXT NOT NULL CHECK (principal_kind IN ('user', 'group')),
    principal TEXT NOT NULL,
    granted_at INTEGER NOT NULL,
    granted_by TEXT NOT NULL,
    PRIMARY KEY (role, principal_kind, principal)
) WITHOUT ROWID;

-- The Unix groups found at sign-in, the roles the session last acted with (a change rotates the session ID),
-- and whether the password was accepted but the second factor is still owed.
ALTER TABLE sessions ADD COLUMN unix_groups TEXT NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN roles TEXT NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN second_factor_pending INTEGER NOT NULL DEFAULT 0;

-- API tokens: only the SHA-256 of the token is kept. The prefix lets people tell tokens apart.
CREATE TABLE api_tokens (
    id INTEGER PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    user_name TEXT NOT NULL,
    name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'approver', 'viewer', 'auditor')),
    created_at INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    last_used_at INTEGER,
    last_used_from TEXT,
    revoked_at INTEGER,
    revoked_by TEXT
);
CREATE INDEX api_tokens_by_user ON api_tokens (user_name);

-- TOTP second factor per user. The secret is sealed with the data directory's key (AES-GCM).
-- confirmed_at stays NULL until the user proves the authenticator works; last_step stops code replay.
CREATE TABLE totp_factors (
    user_name TEXT PRIMARY KEY,
    sealed_secret BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    confirmed_at INTEGER,
    last_step INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

-- One-use recovery codes, stored as SHA-256.
CREATE TABLE totp_recovery_codes (
    user_name TEXT NOT NULL,
    code_hash TEXT NOT NULL,
    used_at INTEGER,
    PRIMARY KEY (user_name, code_hash)
) WITHOUT ROWID;

-- Ties audit rows to the request that wrote them, so every state-changing request is known to be recorded.
ALTER TABLE audit_events ADD COLUMN request_id TEXT;
CREATE INDEX audit_events_by_request ON audit_events (request_id) WHERE request_id IS NOT NULL;
