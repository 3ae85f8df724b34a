-- Facts gathered from hosts, kept with the time they were gathered and the job that gathered them.
CREATE TABLE host_facts (
    host_id INTEGER NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    gathered_at INTEGER NOT NULL,
    job_id INTEGER,
    facts TEXT NOT NULL,
    PRIMARY KEY (host_id, gathered_at)
) WITHOUT ROWID;
