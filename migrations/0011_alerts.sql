-- Alert rules, one state per rule and host, and the history of state changes.
CREATE TABLE alert_rules (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    builtin TEXT UNIQUE,
    enabled INTEGER NOT NULL DEFAULT 1,
    -- 'metric' reads the metric store; other sources read Steward's own state (jobs, facts, backups).
    source TEXT NOT NULL DEFAULT 'metric',
    metric TEXT NOT NULL DEFAULT '',
    matchers TEXT NOT NULL DEFAULT '',
    aggregation TEXT NOT NULL DEFAULT 'avg' CHECK (aggregation IN ('avg', 'min', 'max', 'last', 'rate', 'predict_linear')),
    window_seconds INTEGER NOT NULL DEFAULT 300,
    horizon_seconds INTEGER NOT NULL DEFAULT 0,
    comparison TEXT NOT NULL DEFAULT 'above' CHECK (comparison IN ('above', 'below')),
    warn_threshold REAL,
    warn_clear REAL,
    crit_threshold REAL,
    crit_clear REAL,
    for_seconds INTEGER NOT NULL DEFAULT 0,
    keep_firing_seconds INTEGER NOT NULL DEFAULT 0,
    no_data TEXT NOT NULL DEFAULT 'nodata' CHECK (no_data IN ('nodata', 'ok', 'alerting', 'keep')),
    scope_hosts TEXT NOT NULL DEFAULT '',
    scope_groups TEXT NOT NULL DEFAULT '',
    scope_tags TEXT NOT NULL DEFAULT '',
    labels TEXT NOT NULL DEFAULT '',
    summary TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    runbook_url TEXT NOT NULL DEFAULT '',
    route TEXT NOT NULL DEFAULT '',
    repeat_seconds INTEGER NOT NULL DEFAULT 14400,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    updated_by TEXT NOT NULL
);

CREATE TABLE alert_states (
    rule_id INTEGER NOT NULL REFERENCES alert_rules (id) ON DELETE CASCADE,
    host_id INTEGER NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    state TEXT NOT NULL CHECK (state IN ('normal', 'pending', 'firing', 'recovering', 'nodata', 'error')),
    severity TEXT CHECK (severity IN ('warning', 'critical')),
    value REAL,
    since INTEGER NOT NULL,
    active_since INTEGER,
    last_condition_at INTEGER,
    evaluated_at INTEGER NOT NULL,
    detail TEXT,
    PRIMARY KEY (rule_id, host_id)
) WITHOUT ROWID;

CREATE TABLE alert_history (
    id INTEGER PRIMARY KEY,
    rule_id INTEGER NOT NULL REFERENCES alert_rules (id) ON DELETE CASCADE,
    host_id INTEGER REFERENCES hosts (id) ON DELETE SET NULL,
    host_name TEXT NOT NULL,
    from_state TEXT NOT NULL,
    to_state TEXT NOT NULL,
    severity TEXT,
    value REAL,
    at INTEGER NOT NULL,
    detail TEXT
);
CREATE INDEX alert_history_by_time ON alert_history (at);
CREATE INDEX alert_history_by_rule ON alert_history (rule_id, at);
