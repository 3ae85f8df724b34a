-- Remote write: endpoints that receive every sample Steward stores (Prometheus remote write 1.0), and the queue.
-- A collection round's kept samples are one batch: a snappy-compressed WriteRequest, written once however many
-- endpoints there are. Each endpoint's sent_through is the last batch it has; a batch goes when every enabled
-- endpoint has it, or when it is older than the backlog limit (its samples then count as dropped for those behind).
CREATE TABLE remote_write_endpoints (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    url TEXT NOT NULL,
    auth TEXT NOT NULL DEFAULT 'none' CHECK (auth IN ('none', 'bearer', 'basic')),
    username TEXT NOT NULL DEFAULT '',
    secret_sealed BLOB,
    enabled INTEGER NOT NULL DEFAULT 1,
    sent_through INTEGER NOT NULL DEFAULT 0,
    samples_sent INTEGER NOT NULL DEFAULT 0,
    samples_rejected INTEGER NOT NULL DEFAULT 0,
    samples_dropped INTEGER NOT NULL DEFAULT 0,
    requests_retried INTEGER NOT NULL DEFAULT 0,
    last_success_at INTEGER,
    last_error TEXT NOT NULL DEFAULT '',
    last_error_at INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- AUTOINCREMENT: an id is never used twice, even after every batch was sent and deleted, so a cursor stays valid.
CREATE TABLE remote_write_batches (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at INTEGER NOT NULL,
    samples INTEGER NOT NULL,
    body BLOB NOT NULL
);
