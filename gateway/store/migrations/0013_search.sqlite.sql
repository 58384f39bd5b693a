-- Search (gateway/search), SQLite: FTS5 tables kept in sync with messages and contacts by
-- triggers, so every insert, edit, erasure or deletion reaches the index in the same
-- transaction. The tokenizer folds case and diacritics (unicode61 remove_diacritics 2);
-- đ/Đ, which Unicode does not decompose, are given as d/D. Each document carries its
-- tenant and its row's id as columns of single tokens: a search is scoped by the tenant's
-- token, and a row's document is found by its id's token when the row changes (an
-- index lookup; the FTS rowid is not tied to the row's rowid, which VACUUM may change).
-- The FTS tables keep their own copy of the folded text; an erasure's deletion leaves
-- the old segments until they are merged: SqliteStore.forget_history merges them
-- ('optimize'). PostgreSQL's version of this migration: 0013_search.postgres.sql.

CREATE VIRTUAL TABLE message_search USING fts5(body, tenant_ref, row_ref, tokenize = 'unicode61 remove_diacritics 2');

CREATE VIRTUAL TABLE contact_search USING fts5(body, tenant_ref, row_ref, tokenize = 'unicode61 remove_diacritics 2');

INSERT INTO message_search (body, tenant_ref, row_ref)
SELECT replace(replace(text, 'đ', 'd'), 'Đ', 'D'), tenant_id, id FROM messages WHERE text <> '';

INSERT INTO contact_search (body, tenant_ref, row_ref)
SELECT replace(replace(coalesce(name, '') || ' ' || coalesce(email, '') || ' ' || coalesce(phone, '') || ' ' || replace(replace(replace(replace(replace(replace(coalesce(phone, ''), ' ', ''), '-', ''), '+', ''), '(', ''), ')', ''), '.', ''), 'đ', 'd'), 'Đ', 'D'), tenant_id, id FROM contacts;

CREATE TRIGGER message_search_insert AFTER INSERT ON messages WHEN new.text <> '' BEGIN
  INSERT INTO message_search (body, tenant_ref, row_ref) VALUES (replace(replace(new.text, 'đ', 'd'), 'Đ', 'D'), new.tenant_id, new.id); END;

CREATE TRIGGER message_search_update AFTER UPDATE OF text ON messages BEGIN
  DELETE FROM message_search WHERE rowid IN (SELECT rowid FROM message_search WHERE message_search MATCH 'row_ref : "' || old.id || '"'); INSERT INTO message_search (body, tenant_ref, row_ref) SELECT replace(replace(new.text, 'đ', 'd'), 'Đ', 'D'), new.tenant_id, new.id WHERE new.text <> ''; END;

CREATE TRIGGER message_search_delete AFTER DELETE ON messages BEGIN
  DELETE FROM message_search WHERE rowid IN (SELECT rowid FROM message_search WHERE message_search MATCH 'row_ref : "' || old.id || '"'); END;

CREATE TRIGGER contact_search_insert AFTER INSERT ON contacts BEGIN
  INSERT INTO contact_search (body, tenant_ref, row_ref) VALUES (replace(replace(coalesce(new.name, '') || ' ' || coalesce(new.email, '') || ' ' || coalesce(new.phone, '') || ' ' || replace(replace(replace(replace(replace(replace(coalesce(new.phone, ''), ' ', ''), '-', ''), '+', ''), '(', ''), ')', ''), '.', ''), 'đ', 'd'), 'Đ', 'D'), new.tenant_id, new.id); END;

CREATE TRIGGER contact_search_update AFTER UPDATE OF name, email, phone ON contacts BEGIN
  DELETE FROM contact_search WHERE rowid IN (SELECT rowid FROM contact_search WHERE contact_search MATCH 'row_ref : "' || old.id || '"'); INSERT INTO contact_search (body, tenant_ref, row_ref) VALUES (replace(replace(coalesce(new.name, '') || ' ' || coalesce(new.email, '') || ' ' || coalesce(new.phone, '') || ' ' || replace(replace(replace(replace(replace(replace(coalesce(new.phone, ''), ' ', ''), '-', ''), '+', ''), '(', ''), ')', ''), '.', ''), 'đ', 'd'), 'Đ', 'D'), new.tenant_id, new.id); END;

CREATE TRIGGER contact_search_delete AFTER DELETE ON contacts BEGIN
  DELETE FROM contact_search WHERE rowid IN (SELECT rowid FROM contact_search WHERE contact_search MATCH 'row_ref : "' || old.id || '"'); END;
