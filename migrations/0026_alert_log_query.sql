-- Alerts from logs: a rule with source 'log_lines' counts each host's lines matching this filter (the logs page's own
-- filters, as its address writes them: q=, regex=, unit=, identifier=, priority=) within its window.
ALTER TABLE alert_rules ADD COLUMN log_query TEXT NOT NULL DEFAULT '';
