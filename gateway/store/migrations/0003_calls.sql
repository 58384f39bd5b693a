-- IZICall: calls, per-tenant call settings, recording keys and the recordings catalogue.
-- Portable subset (see 0001_init.sql). Times are UNIX seconds.

CREATE TABLE calls (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    conversation_id TEXT NOT NULL,
    contact_id TEXT NOT NULL,
    agent_id TEXT,
    node_id TEXT NOT NULL,
    state TEXT NOT NULL,
    started_at DOUBLE PRECISION NOT NULL,
    answered_at DOUBLE PRECISION,
    ended_at DOUBLE PRECISION,
    end_reason TEXT,
    duration DOUBLE PRECISION,
    recording_id TEXT,
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, conversation_id) REFERENCES conversations (tenant_id, id)
);

CREATE INDEX calls_conversation_idx ON calls (tenant_id, conversation_id, started_at);

CREATE TABLE call_settings (
    tenant_id TEXT PRIMARY KEY REFERENCES tenants (id),
    recording_enabled BOOLEAN NOT NULL
);

-- One row per tenant key generation; shredding deletes identity_sealed (and keeps the row
-- so recordings can say which key they were under).
CREATE TABLE recording_keys (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    recipient TEXT NOT NULL,
    identity_sealed TEXT,
    created_at DOUBLE PRECISION NOT NULL,
    shredded_at DOUBLE PRECISION,
    UNIQUE (tenant_id, id)
);

CREATE INDEX recording_keys_tenant_idx ON recording_keys (tenant_id, created_at);

CREATE TABLE recordings (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    call_id TEXT NOT NULL,
    key_id TEXT NOT NULL,
    blob_key TEXT NOT NULL,
    state TEXT NOT NULL,
    size BIGINT NOT NULL,
    duration DOUBLE PRECISION NOT NULL,
    sha256 TEXT,
    created_at DOUBLE PRECISION NOT NULL,
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, key_id) REFERENCES recording_keys (tenant_id, id)
);

CREATE INDEX recordings_call_idx ON recordings (tenant_id, call_id);
