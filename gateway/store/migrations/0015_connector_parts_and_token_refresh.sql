-- Connectors (issue 33).
--
-- `connector_outbox.parts`: the parts of a reply the channel already accepted, as a JSON
-- object part → the platform's message id (`{"text": "m_1", "attachment:0": "m_2"}`), for
-- channels that send a reply as several platform messages (Messenger, Zalo: the text, then
-- each file). A retry sends only the parts not in it; a reply that ends `failed` names them
-- (connectors/outbox.py). NULL: nothing accepted yet.
ALTER TABLE connector_outbox ADD COLUMN parts TEXT;

-- Which node refreshes an inbox's OAuth tokens (Zalo: single-use refresh tokens, rotated at
-- every refresh). A node claims the inbox before it refreshes: a conditional upsert that wins
-- when no other node's claim is running (none, or it ran out at `held_until`), then refreshes,
-- stores the new pair and releases the claim; a node that finds the claim taken waits and
-- adopts the pair the holder stores (connectors/token_claims.py, connectors/zalo/tokens.py).
CREATE TABLE connector_token_refreshes (
    channel_id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    node_id TEXT NOT NULL,
    held_until DOUBLE PRECISION NOT NULL,
    FOREIGN KEY (tenant_id, channel_id) REFERENCES connector_channels (tenant_id, id)
);
