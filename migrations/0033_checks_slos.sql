-- Checks: HTTP(S) and TCP probes Steward runs on a schedule. Their results are series in the metric store
-- (probe_success, probe_duration_seconds, probe_http_status_code, probe_ssl_earliest_cert_expiry with check="name")
-- under the host the check belongs to; the newest result is kept here for lists.
CREATE TABLE checks (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL CHECK (kind IN ('http', 'tcp')),
    target TEXT NOT NULL,
    method TEXT NOT NULL DEFAULT 'GET' CHECK (method IN ('GET', 'HEAD', 'POST')),
    expect_status TEXT NOT NULL DEFAULT '200-399',
    expect_body TEXT NOT NULL DEFAULT '',
    timeout_seconds REAL NOT NULL DEFAULT 10,
    interval_seconds INTEGER NOT NULL DEFAULT 30,
    host_id INTEGER NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    enabled INTEGER NOT NULL DEFAULT 1,
    last_at INTEGER,
    last_success INTEGER,
    last_duration REAL,
    last_status INTEGER,
    last_error TEXT NOT NULL DEFAULT '',
    cert_expires_at INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    updated_by TEXT NOT NULL DEFAULT ''
);

-- Service level objectives. The SLI is one of: a check's success ratio (probe), a ratio of two PromQL queries
-- (ratio; good/total or bad/total), the share of a histogram's requests under a threshold (latency), or the hosts'
-- steward_host_up (availability). objective is a percentage; window a rolling 7, 28 or 30 days or the calendar month.
CREATE TABLE slos (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    sli TEXT NOT NULL CHECK (sli IN ('probe', 'ratio', 'latency', 'availability')),
    check_id INTEGER REFERENCES checks (id) ON DELETE RESTRICT,
    ratio_counts TEXT NOT NULL DEFAULT 'good' CHECK (ratio_counts IN ('good', 'bad')),
    events_query TEXT NOT NULL DEFAULT '',
    total_query TEXT NOT NULL DEFAULT '',
    histogram TEXT NOT NULL DEFAULT '',
    matchers TEXT NOT NULL DEFAULT '',
    threshold_seconds REAL,
    objective REAL NOT NULL,
    time_window TEXT NOT NULL CHECK (time_window IN ('7d', '28d', '30d', 'month')),
    scope_hosts TEXT NOT NULL DEFAULT '',
    scope_groups TEXT NOT NULL DEFAULT '',
    alerting INTEGER NOT NULL DEFAULT 1,
    alert_rule_id INTEGER REFERENCES alert_rules (id) ON DELETE SET NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    updated_by TEXT NOT NULL DEFAULT ''
);

-- Good and total events per minute (start of the minute, epoch ms), with running sums since the SLO began: a window's
-- events are two lookups. Minutes older than 3 days keep one row an hour (the hour's last), which is all the running
-- sums need; rows older than 62 days go.
CREATE TABLE slo_minutes (
    slo_id INTEGER NOT NULL REFERENCES slos (id) ON DELETE CASCADE,
    minute INTEGER NOT NULL,
    good REAL NOT NULL,
    total REAL NOT NULL,
    cum_good REAL NOT NULL,
    cum_total REAL NOT NULL,
    PRIMARY KEY (slo_id, minute)
) WITHOUT ROWID;

-- The SLOs a rollout respects (JSON names; empty: every SLO covering its hosts), approvals that let it spend a spent
-- budget (security or urgent, with a reason), and the budget each wave burned (JSON).
ALTER TABLE rollouts ADD COLUMN slos TEXT NOT NULL DEFAULT '';
ALTER TABLE rollout_approvals ADD COLUMN urgent INTEGER NOT NULL DEFAULT 0;
ALTER TABLE rollout_waves ADD COLUMN budget TEXT NOT NULL DEFAULT '';
