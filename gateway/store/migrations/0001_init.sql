-- Initial schema, shared by the SQLite and PostgreSQL backends.
-- Portable subset only: TEXT, INTEGER, BIGINT, DOUBLE PRECISION, BOOLEAN, NOT NULL,
-- PRIMARY KEY, UNIQUE, REFERENCES, CREATE INDEX. Times are UNIX seconds; JSON is TEXT.
-- Statements end with a line ending in ';' (see gateway/store/migrations.py).
-- Tenant-owned rows reference their parents through (tenant_id, id) pairs, so the
-- database itself refuses a row that points into another tenant.

CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE tenants (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    widget_key TEXT NOT NULL UNIQUE,
    identity_secret TEXT NOT NULL,
    require_identity BOOLEAN NOT NULL,
    status TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    ended_at DOUBLE PRECISION
);

-- assign_order: tenant-wide ticket of the agent's last round-robin assignment
-- (0 = never); ties on last_assigned_at cannot break the rotation.
CREATE TABLE agents (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    status TEXT NOT NULL,
    capacity INTEGER NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at DOUBLE PRECISION NOT NULL,
    last_assigned_at DOUBLE PRECISION,
    assign_order BIGINT NOT NULL,
    UNIQUE (tenant_id, id)
);

CREATE TABLE agent_presence (
    tenant_id TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    node_id TEXT NOT NULL,
    sockets INTEGER NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (agent_id, node_id),
    FOREIGN KEY (tenant_id, agent_id) REFERENCES agents (tenant_id, id)
);

CREATE INDEX agent_presence_tenant_idx ON agent_presence (tenant_id, agent_id);

CREATE TABLE contacts (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    name TEXT,
    email TEXT,
    phone TEXT,
    attributes TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    UNIQUE (tenant_id, id)
);

CREATE INDEX contacts_tenant_created_idx ON contacts (tenant_id, created_at);

CREATE TABLE contact_identities (
    tenant_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    contact_id TEXT NOT NULL,
    UNIQUE (tenant_id, kind, value),
    FOREIGN KEY (tenant_id, contact_id) REFERENCES contacts (tenant_id, id)
);

CREATE INDEX contact_identities_contact_idx ON contact_identities (tenant_id, contact_id);

CREATE TABLE conversations (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    channel TEXT NOT NULL,
    contact_id TEXT NOT NULL,
    status TEXT NOT NULL,
    assignee_id TEXT,
    epoch TEXT NOT NULL,
    last_seq BIGINT NOT NULL,
    external_thread_id TEXT,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    UNIQUE (tenant_id, id),
    UNIQUE (tenant_id, channel, external_thread_id),
    FOREIGN KEY (tenant_id, contact_id) REFERENCES contacts (tenant_id, id),
    FOREIGN KEY (tenant_id, assignee_id) REFERENCES agents (tenant_id, id)
);

CREATE INDEX conversations_tenant_updated_idx ON conversations (tenant_id, updated_at DESC);

CREATE INDEX conversations_tenant_status_idx ON conversations (tenant_id, status, assignee_id, created_at);

CREATE INDEX conversations_tenant_contact_idx ON conversations (tenant_id, contact_id, updated_at DESC);

CREATE TABLE messages (
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
    UNIQUE (conversation_id, client_id),
    UNIQUE (conversation_id, external_id),
    FOREIGN KEY (tenant_id, conversation_id) REFERENCES conversations (tenant_id, id)
);
-- UNIQUE (conversation_id, seq) doubles as the index for history pages.

CREATE TABLE read_positions (
    tenant_id TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    participant TEXT NOT NULL,
    seq BIGINT NOT NULL,
    PRIMARY KEY (conversation_id, participant),
    FOREIGN KEY (tenant_id, conversation_id) REFERENCES conversations (tenant_id, id)
);

CREATE INDEX read_positions_participant_idx ON read_positions (tenant_id, participant, conversation_id);
