-- Audit events: who did what, when, from where, with before/after. Append-only: updates and deletes are refused by
-- triggers; the retention work replaces the delete trigger with its own rule in a later migration.
CREATE TABLE audit_events (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    source TEXT,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    before TEXT,
    after TEXT
);
CREATE INDEX audit_by_time ON audit_events (at);
CREATE INDEX audit_by_actor ON audit_events (actor, at);
CREATE INDEX audit_by_action ON audit_events (action, at);
CREATE INDEX audit_by_target ON audit_events (target, at);

CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only');
END;

CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only');
END;
