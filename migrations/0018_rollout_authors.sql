-- Everyone who wrote a revision of a rollout. Four-eyes: none of them may approve it, not only its first requester.
CREATE TABLE rollout_authors (
    rollout_id INTEGER NOT NULL REFERENCES rollouts (id) ON DELETE CASCADE,
    actor TEXT NOT NULL,
    first_revision INTEGER NOT NULL,
    PRIMARY KEY (rollout_id, actor)
);
INSERT OR IGNORE INTO rollout_authors (rollout_id, actor, first_revision) SELECT id, requested_by, 1 FROM rollouts;
-- Revisions saved before this table existed are known from the audit log.
INSERT OR IGNORE INTO rollout_authors (rollout_id, actor, first_revision)
    SELECT CAST(substr(target, 9) AS INTEGER), actor, 0 FROM audit_events
    WHERE action = 'rollout.update' AND target LIKE 'rollout:%'
      AND CAST(substr(target, 9) AS INTEGER) IN (SELECT id FROM rollouts);
