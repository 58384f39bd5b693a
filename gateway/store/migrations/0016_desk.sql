-- The agent desk (gateway/desk): a tenant's canned responses (typed as "/shortcut" in the
-- console's composer) and the labels agents put on conversations.

CREATE TABLE canned_responses (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    shortcut TEXT NOT NULL,
    text TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    UNIQUE (tenant_id, id),
    UNIQUE (tenant_id, shortcut)
);

-- a label is a name of the tenant's; a conversation carries each name once
CREATE TABLE conversation_labels (
    tenant_id TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    label TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (tenant_id, conversation_id, label),
    FOREIGN KEY (tenant_id, conversation_id) REFERENCES conversations (tenant_id, id) ON DELETE CASCADE
);

CREATE INDEX conversation_labels_label_idx ON conversation_labels (tenant_id, label, conversation_id);
