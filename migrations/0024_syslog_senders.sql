-- Syslog intake: the addresses allowed to send (anything else is refused), and the host each one's lines belong to.
CREATE TABLE syslog_senders (
    id INTEGER PRIMARY KEY,
    -- An address or a CIDR range; the most specific entry that holds a sender's address decides.
    network TEXT NOT NULL UNIQUE,
    -- NULL: the lines go to the host whose address is the sender's (the panel host for loopback). A host's removal
    -- removes its entries rather than leaving them to fall back to that rule.
    host_id INTEGER REFERENCES hosts (id) ON DELETE CASCADE,
    -- The zone RFC 3164 timestamps are read in; '' means the host's own zone when known, else the panel's.
    time_zone TEXT NOT NULL DEFAULT '',
    comment TEXT NOT NULL DEFAULT '',
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
