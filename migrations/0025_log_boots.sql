-- "This boot" on the logs page: each host's newest boot as its journal reports it, and when that boot began (the
-- journal's wall-clock time less its time since boot).
ALTER TABLE log_sources ADD COLUMN boot_id TEXT NOT NULL DEFAULT '';
ALTER TABLE log_sources ADD COLUMN boot_started_ms INTEGER;
