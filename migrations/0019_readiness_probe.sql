-- /readyz commits a row here: a real write to the database file (a TEMP table lives elsewhere and proved nothing
-- about a full disk).
CREATE TABLE readiness_probe (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    checked_at INTEGER NOT NULL
);
