-- Central logs: each host's journal (and later syslog and files) in compressed blocks of lines, with a full-text
-- index per block and the position each source was read to, saved in the same transaction as the lines it produced.

CREATE TABLE log_blocks (
    -- Never reused: following sends the blocks stored after the last one it sent.
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    host_id INTEGER NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    source TEXT NOT NULL CHECK (source IN ('journal', 'syslog', 'file')),
    start_ms INTEGER NOT NULL,
    end_ms INTEGER NOT NULL,
    line_count INTEGER NOT NULL CHECK (line_count > 0),
    -- Bit p is set when the block holds a line of priority p (0 emerg .. 7 debug).
    priorities INTEGER NOT NULL,
    min_priority INTEGER NOT NULL,
    raw_bytes INTEGER NOT NULL,
    -- zlib-compressed JSON lines (see LogBlockCodec).
    data BLOB NOT NULL,
    stored_at INTEGER NOT NULL,
    -- 0: as one read stored it; 1: merged from such blocks into a full one.
    compacted INTEGER NOT NULL DEFAULT 0 CHECK (compacted IN (0, 1)),
    -- A line's sequence is the id of the block a read first stored it in (with its place there): it survives merging,
    -- so following and paging neither repeat nor skip a line. The lowest and highest sequence of the block's lines.
    seq_low INTEGER NOT NULL DEFAULT 0,
    seq_high INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX log_blocks_by_host_time ON log_blocks (host_id, end_ms);
CREATE INDEX log_blocks_by_time ON log_blocks (end_ms);
CREATE INDEX log_blocks_fresh ON log_blocks (host_id, source, compacted);
CREATE INDEX log_blocks_by_seq ON log_blocks (seq_high);

-- The units and syslog identifiers each block holds, for the filters.
-- The columns in the key's order: SQLite 3.40's quick_check reports NULLs in a WITHOUT ROWID table whose NOT NULL
-- columns are declared in another order than its primary key (a false alarm, but it would stop Steward's start).
CREATE TABLE log_block_names (
    kind TEXT NOT NULL CHECK (kind IN ('unit', 'identifier')),
    name TEXT NOT NULL,
    block_id INTEGER NOT NULL REFERENCES log_blocks (id) ON DELETE CASCADE,
    PRIMARY KEY (kind, name, block_id)
) WITHOUT ROWID;
CREATE INDEX log_block_names_by_block ON log_block_names (block_id);

-- One document per block (rowid = the block's id): its messages, units and identifiers. Contentless and without
-- positions: it finds the blocks that hold every word of a search; the lines are then matched in the block itself.
CREATE VIRTUAL TABLE log_search USING fts5 (body, content = '', detail = none);

-- Whoever deletes a block (retention, a merge, a host's removal), its document leaves the index: a contentless index
-- forgets a document only when given it again, which steward_log_search_body rebuilds from the block (a function
-- every Steward connection has; a plain sqlite3 shell cannot delete blocks, rather than leave the index wrong).
CREATE TRIGGER log_blocks_unindex AFTER DELETE ON log_blocks BEGIN
    INSERT INTO log_search (log_search, rowid, body) VALUES ('delete', old.id, steward_log_search_body(old.data));
END;

-- Where each host's source was read to (journalctl's cursor), and how the last read went.
CREATE TABLE log_sources (
    host_id INTEGER NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    source TEXT NOT NULL,
    position TEXT NOT NULL DEFAULT '',
    read_at INTEGER,
    lines_total INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (host_id, source)
);
