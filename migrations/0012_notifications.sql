-- Notification channels, what was sent (the delivery log), per-alert notification memory and silences.
CREATE TABLE notification_channels (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL CHECK (kind IN ('webhook', 'email')),
    enabled INTEGER NOT NULL DEFAULT 1,
    -- Routing: alerts of at least this severity whose labels include every match_labels pair (rules with an explicit
    -- route go to the channels they name instead).
    min_severity TEXT NOT NULL DEFAULT 'warning' CHECK (min_severity IN ('warning', 'critical')),
    match_labels TEXT NOT NULL DEFAULT '',
    send_resolved INTEGER NOT NULL DEFAULT 1,
    group_wait_seconds INTEGER NOT NULL DEFAULT 30,
    group_interval_seconds INTEGER NOT NULL DEFAULT 300,
    url TEXT NOT NULL DEFAULT '',
    secret_sealed BLOB,
    smtp_host TEXT NOT NULL DEFAULT '',
    smtp_port INTEGER NOT NULL DEFAULT 587,
    smtp_security TEXT NOT NULL DEFAULT 'starttls' CHECK (smtp_security IN ('starttls', 'tls', 'none')),
    smtp_user TEXT NOT NULL DEFAULT '',
    password_sealed BLOB,
    mail_from TEXT NOT NULL DEFAULT '',
    mail_to TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- One notification group per channel and rule: what it last told the channel, so a restart does not repeat it.
CREATE TABLE notification_groups (
    channel_id INTEGER NOT NULL REFERENCES notification_channels (id) ON DELETE CASCADE,
    rule_id INTEGER NOT NULL REFERENCES alert_rules (id) ON DELETE CASCADE,
    first_change_at INTEGER,
    last_sent_at INTEGER,
    -- host_id:severity of every alert the last message reported as firing, comma-separated.
    last_firing TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (channel_id, rule_id)
) WITHOUT ROWID;

CREATE TABLE notification_deliveries (
    id INTEGER PRIMARY KEY,
    channel_id INTEGER REFERENCES notification_channels (id) ON DELETE SET NULL,
    channel_name TEXT NOT NULL,
    rule_id INTEGER REFERENCES alert_rules (id) ON DELETE SET NULL,
    rule_name TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'failed')),
    reason TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER,
    created_at INTEGER NOT NULL,
    sent_at INTEGER,
    error TEXT,
    subject TEXT NOT NULL,
    payload TEXT NOT NULL
);
CREATE INDEX notification_deliveries_by_time ON notification_deliveries (created_at);
CREATE INDEX notification_deliveries_pending ON notification_deliveries (status, next_attempt_at);

-- Silences mute notifications (never evaluation) for alerts whose rule, host, severity and labels match.
CREATE TABLE silences (
    id INTEGER PRIMARY KEY,
    matchers TEXT NOT NULL,
    starts_at INTEGER NOT NULL,
    ends_at INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    comment TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX silences_by_end ON silences (ends_at);
