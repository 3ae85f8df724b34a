-- Metric store: one row per series (a host, a metric name and its other labels), and compressed chunks of samples.
-- resolution 0 holds raw samples; 60000 and 3600000 hold the 1-minute and 1-hour rollups (count, min, max, sum,
-- last per bucket). A chunk is rewritten in place while it fills, so a crash loses at most what was not yet flushed.
CREATE TABLE metric_series (
    id INTEGER PRIMARY KEY,
    host_id INTEGER NOT NULL REFERENCES hosts(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    labels TEXT NOT NULL DEFAULT '',
    type TEXT NOT NULL DEFAULT 'untyped' CHECK (type IN ('counter', 'gauge', 'histogram', 'summary', 'untyped')),
    created_at INTEGER NOT NULL,
    UNIQUE (host_id, name, labels)
);
CREATE INDEX metric_series_by_name ON metric_series (name);

CREATE TABLE metric_chunks (
    series_id INTEGER NOT NULL REFERENCES metric_series(id) ON DELETE CASCADE,
    resolution INTEGER NOT NULL CHECK (resolution IN (0, 60000, 3600000)),
    start_ms INTEGER NOT NULL,
    end_ms INTEGER NOT NULL,
    samples INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (series_id, resolution, start_ms)
) WITHOUT ROWID;

-- Per host: which series to keep from its metrics URL, one name or glob per line; NULL keeps the built-in list.
ALTER TABLE hosts ADD COLUMN metrics_allow TEXT;
