-- Satisfaction ratings (gateway/ratings): a visitor rates a resolved conversation, once per
-- resolution. A resolution is named by the conversation's last_seq when it was rated (a
-- conversation reopened by a new message and resolved again can be rated again).
-- agent_id: the conversation's assignee when it was rated. Erased with the contact
-- (gateway/privacy/dsr.py); deleted with its conversation.

CREATE TABLE conversation_ratings (
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    conversation_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    contact_id TEXT NOT NULL,
    agent_id TEXT,
    score INTEGER NOT NULL CHECK (score BETWEEN 1 AND 5),
    comment TEXT,
    created_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (tenant_id, conversation_id, seq)
);

CREATE INDEX conversation_ratings_tenant_created_idx ON conversation_ratings (tenant_id, created_at);
CREATE INDEX conversation_ratings_tenant_contact_idx ON conversation_ratings (tenant_id, contact_id);
