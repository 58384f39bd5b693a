-- Search (gateway/search), PostgreSQL: full-text search with GIN indexes over the folded
-- text: lower case, no diacritics (the `unaccent` extension of PostgreSQL's contrib, in
-- Debian's postgresql package: đ/Đ to d too), and the punctuation PostgreSQL's parser
-- would keep inside a word (e-mail addresses, host names, paths, hyphenated words) as
-- spaces, so that words split as in FTS5 and in gateway/search/fold.py. The extension
-- goes into schema `public` (once per database, whatever schema the gateway's tables are
-- in; its role needs CREATE on the database, e.g. as its owner, or an administrator runs
-- `CREATE EXTENSION unaccent SCHEMA public` first). izh_fold names it with a string body,
-- so that dropping a schema of the gateway's never touches the extension. The indexes are
-- expressions over the rows themselves: every insert, edit, erasure or deletion of a
-- message or a contact updates them with the row, and nothing else holds the text.
-- SQLite's version of this migration: 0013_search.sqlite.sql.

CREATE EXTENSION IF NOT EXISTS unaccent SCHEMA public;

CREATE FUNCTION izh_fold(t text) RETURNS text LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS 'SELECT lower(translate(public.unaccent(''public.unaccent''::regdictionary, t), ''@./-_:&<>+#~=%?'', ''               ''))';

CREATE FUNCTION izh_contact_doc(name text, email text, phone text) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN izh_fold(coalesce(name, '') || ' ' || coalesce(email, '') || ' ' || coalesce(phone, '') || ' ' || translate(coalesce(phone, ''), ' -+().', ''));

CREATE INDEX messages_search_idx ON messages USING gin (to_tsvector('simple'::regconfig, izh_fold(text)));

CREATE INDEX contacts_search_idx ON contacts USING gin (to_tsvector('simple'::regconfig, izh_contact_doc(name, email, phone)));
