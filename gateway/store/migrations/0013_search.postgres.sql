-- Search (gateway/search), PostgreSQL: full-text search with GIN indexes over the folded
-- text: lower case, no diacritics (the `unaccent` extension of PostgreSQL's contrib, in
-- Debian's postgresql package: đ/Đ to d too), and the punctuation PostgreSQL's parser
-- would keep inside a word (e-mail addresses, host names, paths, hyphenated words) as
-- spaces, so that words split as in FTS5 and in gateway/search/fold.py. The extension
-- goes into schema `public` (once per database, whatever schema the gateway's tables are
-- in; its role needs CREATE on the database, e.g. as its owner, or an administrator runs
-- `CREATE EXTENSION unaccent SCHEMA public` first). izh_fold names it with a string body,
-- so that dropping a schema of the gateway's never touches the extension. Messages keep
-- their folded words in a generated column (`search_tsv`, without positions), so that a
-- search can also walk a tenant's newest messages testing each row cheaply
-- (gateway/search/store.py: the newest messages first, the GIN index for rare words);
-- contacts are searched through an expression index. Every insert, edit, erasure or
-- deletion of a message or a contact updates them with the row (the column is computed
-- from `text` by PostgreSQL itself). Adding the column rewrites the messages table.
-- SQLite's version of this migration: 0013_search.sqlite.sql.

CREATE EXTENSION IF NOT EXISTS unaccent SCHEMA public;

CREATE FUNCTION izh_fold(t text) RETURNS text LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS 'SELECT lower(translate(public.unaccent(''public.unaccent''::regdictionary, t), ''@./-_:&<>+#~=%?'', ''               ''))';

CREATE FUNCTION izh_contact_doc(name text, email text, phone text) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN izh_fold(coalesce(name, '') || ' ' || coalesce(email, '') || ' ' || coalesce(phone, '') || ' ' || translate(coalesce(phone, ''), ' -+().', ''));

ALTER TABLE messages ADD COLUMN search_tsv tsvector GENERATED ALWAYS AS (strip(to_tsvector('simple'::regconfig, izh_fold(text)))) STORED;

CREATE INDEX messages_search_idx ON messages USING gin (search_tsv);

CREATE INDEX messages_tenant_created_idx ON messages (tenant_id, created_at DESC, id DESC);

CREATE INDEX contacts_search_idx ON contacts USING gin (to_tsvector('simple'::regconfig, izh_contact_doc(name, email, phone)));
