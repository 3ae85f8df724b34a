-- Update rollouts: what to change where, in which waves, under which approval policy, with the plan approvers see,
-- their decisions, and what each wave did on each host.

CREATE TABLE rollouts (
    id INTEGER PRIMARY KEY,
    title TEXT NOT NULL,
    what TEXT NOT NULL CHECK (what IN ('security', 'all', 'packages', 'playbook')),
    packages TEXT NOT NULL DEFAULT '[]',       -- JSON: names, or name=version to pin (rollbacks)
    playbook TEXT NOT NULL DEFAULT '',
    playbook_commit TEXT NOT NULL DEFAULT '',
    targets TEXT NOT NULL DEFAULT '[]',        -- JSON: host and group names
    tags TEXT NOT NULL DEFAULT '[]',
    canary INTEGER NOT NULL DEFAULT 1 CHECK (canary >= 0),
    wave_kind TEXT NOT NULL DEFAULT 'count' CHECK (wave_kind IN ('count', 'percent')),
    wave_size INTEGER NOT NULL DEFAULT 1 CHECK (wave_size >= 1),
    pause_seconds INTEGER NOT NULL DEFAULT 0 CHECK (pause_seconds >= 0),
    max_failure_percent INTEGER NOT NULL DEFAULT 0 CHECK (max_failure_percent BETWEEN 0 AND 100),
    reboot TEXT NOT NULL DEFAULT 'never' CHECK (reboot IN ('never', 'when_required', 'always')),
    window_id INTEGER REFERENCES maintenance_windows (id) ON DELETE SET NULL,
    approvals_required INTEGER NOT NULL DEFAULT 1 CHECK (approvals_required BETWEEN 0 AND 10),
    expires_at INTEGER NOT NULL,
    check_url TEXT NOT NULL DEFAULT '',
    settle_seconds INTEGER NOT NULL DEFAULT 60 CHECK (settle_seconds >= 0),
    state TEXT NOT NULL CHECK (state IN ('planning', 'plan_failed', 'awaiting_approval', 'approved', 'running', 'paused', 'succeeded',
        'failed', 'aborted', 'denied', 'expired')),
    state_detail TEXT NOT NULL DEFAULT '',
    revision INTEGER NOT NULL DEFAULT 1,
    requested_by TEXT NOT NULL,
    plan_job_id INTEGER,
    planned_at INTEGER,
    plan_facts_at INTEGER,
    current_wave INTEGER NOT NULL DEFAULT 0,
    gate_started_at INTEGER,
    rollback_of INTEGER REFERENCES rollouts (id) ON DELETE SET NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    finished_at INTEGER
);
CREATE INDEX rollouts_by_state ON rollouts (state);

-- The plan: per host, the packages with their current and new versions (or the playbook's diff).
CREATE TABLE rollout_plan (
    rollout_id INTEGER NOT NULL REFERENCES rollouts (id) ON DELETE CASCADE,
    host TEXT NOT NULL,
    changes TEXT NOT NULL DEFAULT '[]',        -- JSON [{package, current, candidate, origin, security}]
    diff TEXT NOT NULL DEFAULT '',
    problem TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (rollout_id, host)
) WITHOUT ROWID;

CREATE TABLE rollout_approvals (
    id INTEGER PRIMARY KEY,
    rollout_id INTEGER NOT NULL REFERENCES rollouts (id) ON DELETE CASCADE,
    revision INTEGER NOT NULL,
    actor TEXT NOT NULL,
    decision TEXT NOT NULL CHECK (decision IN ('approve', 'deny')),
    reason TEXT NOT NULL DEFAULT '',
    at INTEGER NOT NULL,
    UNIQUE (rollout_id, revision, actor)
);

CREATE TABLE rollout_waves (
    rollout_id INTEGER NOT NULL REFERENCES rollouts (id) ON DELETE CASCADE,
    number INTEGER NOT NULL,
    hosts TEXT NOT NULL,                       -- JSON host names
    job_id INTEGER,
    state TEXT NOT NULL CHECK (state IN ('pending', 'running', 'gating', 'passed', 'failed')),
    started_at INTEGER,
    finished_at INTEGER,
    gate TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (rollout_id, number)
) WITHOUT ROWID;

CREATE TABLE rollout_results (
    rollout_id INTEGER NOT NULL REFERENCES rollouts (id) ON DELETE CASCADE,
    host TEXT NOT NULL,
    wave INTEGER NOT NULL,
    status TEXT NOT NULL,
    changes TEXT NOT NULL DEFAULT '[]',        -- JSON [{package, from, to}]
    rebooted INTEGER NOT NULL DEFAULT 0,
    detail TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (rollout_id, host)
) WITHOUT ROWID;
