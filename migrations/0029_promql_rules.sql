-- Alert rules in PromQL: a rule with source 'promql' evaluates `expression` over the metric store. With thresholds,
-- the expression gives each host's value and the levels apply as for metric rules; without, every series it returns
-- is alerting at `severity` (as a Prometheus alerting rule is).
ALTER TABLE alert_rules ADD COLUMN expression TEXT NOT NULL DEFAULT '';
ALTER TABLE alert_rules ADD COLUMN severity TEXT NOT NULL DEFAULT 'warning' CHECK (severity IN ('warning', 'critical'));
-- The comparison exactly: comparison keeps the direction ('above' or 'below', as its CHECK allows) and this column
-- the operator; '' is the old meaning (above: >=, below: <=).
ALTER TABLE alert_rules ADD COLUMN operator TEXT NOT NULL DEFAULT '' CHECK (operator IN ('', '>=', '<=', '>', '<', '==', '!='));
-- The labels of the series that gave a host's value, for templates such as {{ $labels.mountpoint }}.
ALTER TABLE alert_states ADD COLUMN labels TEXT NOT NULL DEFAULT '';
