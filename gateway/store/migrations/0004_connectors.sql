-- Connectors (connectors/): tenant channel inboxes, conversation links, the durable
-- outbox and the email Message-ID index. Portable subset (see 0001_init.sql).

-- One inbox of a tenant on a channel. `address` is the channel-side routing key for
-- inbound traffic (email inbox address, Facebook page id, Zalo OA id, ...), unique per
-- kind. `credentials` is base64(AES-GCM(JSON)) under the master key; `settings` is JSON.
CREATE TABLE connector_channels (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    address TEXT,
    credentials TEXT NOT NULL,
    settings TEXT NOT NULL,
    enabled BOOLEAN NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    UNIQUE (tenant_id, id),
    UNIQUE (kind, address)
);

CREATE INDEX connector_channels_tenant_idx ON connector_channels (tenant_id, kind);

-- Which inbox and which channel identity a connector conversation talks to.
CREATE TABLE connector_links (
    conversation_id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    channel_id TEXT,
    recipient_id TEXT NOT NULL,
    meta TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    FOREIGN KEY (tenant_id, conversation_id) REFERENCES conversations (tenant_id, id)
);

-- Durable outbox: one row per outbound agent message.
-- state: queued (due at next_attempt_at) | sending (claimed until lease_until) | sent | failed
CREATE TABLE connector_outbox (
    message_id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_at DOUBLE PRECISION NOT NULL,
    lease_until DOUBLE PRECISION,
    claimed_by TEXT,
    last_error TEXT,
    external_id TEXT,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    FOREIGN KEY (tenant_id, conversation_id) REFERENCES conversations (tenant_id, id)
);

CREATE INDEX connector_outbox_due_idx ON connector_outbox (state, next_attempt_at);

CREATE INDEX connector_outbox_lease_idx ON connector_outbox (state, lease_until);

-- Every RFC 5322 Message-ID we received or sent, per tenant (without angle brackets).
CREATE TABLE email_message_ids (
    tenant_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    direction TEXT NOT NULL,
    subject TEXT,
    created_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (tenant_id, message_id),
    FOREIGN KEY (tenant_id, conversation_id) REFERENCES conversations (tenant_id, id)
);

CREATE INDEX email_message_ids_conv_idx ON email_message_ids (tenant_id, conversation_id, created_at);
