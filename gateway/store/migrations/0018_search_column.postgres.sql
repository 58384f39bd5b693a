-- Search on PostgreSQL, second step (0013 as merged stays as it is: a database that applied
-- it gets this). Messages keep their folded words in a generated column (`search_tsv`,
-- without positions) indexed by GIN instead of the expression index of 0013, and a
-- (tenant, created_at) index: a search walks a tenant's newest messages testing each row's
-- stored words cheaply (gateway/search/store.py: the recent window), and asks the GIN index
-- only when they hold fewer hits than the page. The column is computed from `text` by
-- PostgreSQL itself, so every insert, edit or erasure updates it with the row. Adding it
-- rewrites the messages table (81 s for 1.1M messages on a loaded 2-core machine,
-- docs/performance.md, "Search"). SQLite has no version 18: its FTS5 tables (0013) serve.

DROP INDEX messages_search_idx;

ALTER TABLE messages ADD COLUMN search_tsv tsvector GENERATED ALWAYS AS (strip(to_tsvector('simple'::regconfig, izh_fold(text)))) STORED;

CREATE INDEX messages_search_idx ON messages USING gin (search_tsv);

CREATE INDEX messages_tenant_created_idx ON messages (tenant_id, created_at DESC, id DESC);
