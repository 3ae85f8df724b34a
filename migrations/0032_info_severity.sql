-- A third severity, info, below warning, as Prometheus rule packs use it: it shows on Steward's pages and goes only
-- to channels that ask for info. Only the CHECK constraints of three columns change, to allow 'info'. Rebuilding
-- alert_rules or notification_channels would cascade-delete their states, history and deliveries, so the CHECK text
-- is changed in place, the procedure SQLite documents for loosening a constraint (ALTER TABLE, "Making Other Kinds
-- Of Table Schema Changes"): every stored row already satisfies the wider constraint.
PRAGMA writable_schema = ON;
UPDATE sqlite_schema
SET sql = replace(sql, 'severity IN (''warning'', ''critical'')', 'severity IN (''info'', ''warning'', ''critical'')')
WHERE type = 'table' AND name IN ('alert_rules', 'alert_states', 'notification_channels');
PRAGMA writable_schema = RESET;
