-- Which node polls an email inbox over IMAP (connectors/email/imap.py). Every node that polls
-- (EMAIL_IMAP_INTERVAL > 0) claims an inbox before each poll: a conditional upsert that wins
-- when the inbox is this node's already (a renewal) or the last claim has run out
-- (`held_until`), so one node at a time polls an inbox (and keeps its IDLE connection); a
-- node that dies stops renewing and another takes the inbox over when its claim runs out.

CREATE TABLE email_imap_polls (
    channel_id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    node_id TEXT NOT NULL,
    held_until DOUBLE PRECISION NOT NULL,
    FOREIGN KEY (tenant_id, channel_id) REFERENCES connector_channels (tenant_id, id)
);
