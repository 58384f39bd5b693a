-- Fewer index entries written per message.
--
-- * messages: the idempotency keys become partial unique indexes. As table constraints,
--   UNIQUE (conversation_id, client_id) and UNIQUE (conversation_id, external_id) gave
--   every message an entry in both, NULL key or not: every widget or agent message a
--   NULL external_id entry, every connector message a NULL client_id entry. A partial
--   index holds only the messages that have the key, and a lookup by key (key = value,
--   key IN (...)) still uses it. SQLite cannot drop a table constraint, so the table is
--   rebuilt (the same statements on PostgreSQL): the migration takes time in proportion
--   to the number of stored messages.
-- * conversations: the per-contact index loses updated_at. A message moves its
--   conversation in every index that holds updated_at; a contact has few conversations,
--   so ordering them needs no index.
--
-- Measured (SqliteStore.append_batch, 5,000 conversations, batches of ~4): see
-- docs/performance.md.

CREATE TABLE messages_rebuilt (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    client_id TEXT,
    external_id TEXT,
    author_type TEXT NOT NULL,
    author_id TEXT,
    text TEXT NOT NULL,
    attachments TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    delivery_state TEXT NOT NULL,
    delivery_error TEXT,
    UNIQUE (conversation_id, seq),
    FOREIGN KEY (tenant_id, conversation_id) REFERENCES conversations (tenant_id, id)
);

INSERT INTO messages_rebuilt (id, tenant_id, conversation_id, seq, client_id, external_id, author_type,
                              author_id, text, attachments, created_at, delivery_state, delivery_error)
SELECT id, tenant_id, conversation_id, seq, client_id, external_id, author_type,
       author_id, text, attachments, created_at, delivery_state, delivery_error
FROM messages;

DROP TABLE messages;

ALTER TABLE messages_rebuilt RENAME TO messages;

CREATE UNIQUE INDEX messages_client_id_idx ON messages (conversation_id, client_id) WHERE client_id IS NOT NULL;

CREATE UNIQUE INDEX messages_external_id_idx ON messages (conversation_id, external_id) WHERE external_id IS NOT NULL;

DROP INDEX conversations_tenant_contact_idx;

CREATE INDEX conversations_tenant_contact_idx ON conversations (tenant_id, contact_id);
