-- Blocks as a read stored them (compacted = 0) live minutes, until they are merged into full blocks: they are no longer
-- indexed (a search reads every fresh block in its range), so a line is indexed once, when its merged block is written.
-- The fresh blocks' documents written before this migration leave the index, and the trigger only takes out the
-- documents of merged blocks.
INSERT INTO log_search (log_search, rowid, body)
    SELECT 'delete', id, steward_log_search_body(data) FROM log_blocks WHERE compacted = 0;

DROP TRIGGER log_blocks_unindex;
CREATE TRIGGER log_blocks_unindex AFTER DELETE ON log_blocks WHEN old.compacted = 1 BEGIN
    INSERT INTO log_search (log_search, rowid, body) VALUES ('delete', old.id, steward_log_search_body(old.data));
END;
