-- Search on SQLite, indexed off the append transaction. With 0013's trigger every stored
-- message was tokenized into FTS5 inside its append's transaction, and FTS5 writes a new
-- segment at every COMMIT and merges segments as they pile up: ~110 µs of the loop per
-- message at one message a transaction (docs/performance.md, "The search index off the
-- append path"). Now an insert only queues the message's id; `SearchStore.catch_up`
-- (gateway/search/store.py) indexes the queue in transactions of up to 100 — every second
-- in the background, and before every search, so that a search still finds every stored
-- message. An edit or an erasure takes the old text out of the index at once (as before)
-- and queues the new text; a deleted message leaves the index and the queue at once.
CREATE TABLE message_search_queue (message_id TEXT PRIMARY KEY) WITHOUT ROWID;

DROP TRIGGER message_search_insert;

CREATE TRIGGER message_search_insert AFTER INSERT ON messages WHEN new.text <> '' BEGIN
  INSERT OR IGNORE INTO message_search_queue (message_id) VALUES (new.id); END;

DROP TRIGGER message_search_update;

CREATE TRIGGER message_search_update AFTER UPDATE OF text ON messages BEGIN
  DELETE FROM message_search WHERE rowid IN (SELECT rowid FROM message_search WHERE message_search MATCH 'row_ref : "' || old.id || '"'); INSERT OR IGNORE INTO message_search_queue (message_id) SELECT new.id WHERE new.text <> ''; END;

DROP TRIGGER message_search_delete;

CREATE TRIGGER message_search_delete AFTER DELETE ON messages BEGIN
  DELETE FROM message_search WHERE rowid IN (SELECT rowid FROM message_search WHERE message_search MATCH 'row_ref : "' || old.id || '"'); DELETE FROM message_search_queue WHERE message_id = old.id; END;
