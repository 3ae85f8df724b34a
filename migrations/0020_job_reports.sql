-- What a playbook reports back to Steward (a rollout's plan, its apply report, a reboot), whole: job_task_events
-- keeps task output cut to its last 2,000 characters for display, and a plan of a few hundred packages is longer.
CREATE TABLE job_reports (
    job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    host TEXT NOT NULL,
    name TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (job_id, host, name)
) WITHOUT ROWID;
