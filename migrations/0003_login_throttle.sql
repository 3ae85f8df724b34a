-- Failed-login counters and temporary blocks. A row is one scope: an address, a user at an address, or a user
-- (across addresses: delays only, never a block, so the real user can still sign in from elsewhere).
CREATE TABLE login_throttle (
    scope TEXT NOT NULL CHECK (scope IN ('address', 'user_address', 'user')),
    user_name TEXT NOT NULL DEFAULT '',
    address TEXT NOT NULL DEFAULT '',
    failures INTEGER NOT NULL,
    window_start INTEGER NOT NULL,
    last_failure INTEGER NOT NULL,
    blocked_until INTEGER,
    PRIMARY KEY (scope, user_name, address)
) WITHOUT ROWID;
CREATE INDEX login_throttle_blocked ON login_throttle (blocked_until) WHERE blocked_until IS NOT NULL;
