-- Liveness of gateway nodes, for what a node leaves behind when it dies: a call lives in
-- the process that terminated its caller's leg (calls.node_id), and when that process is
-- gone for good its unfinished calls are ended by the other nodes (gateway/calls/sweep.py).
-- Every node upserts its row every CALL_NODE_HEARTBEAT seconds; a clean shutdown deletes it.

CREATE TABLE node_heartbeats (
    node_id TEXT PRIMARY KEY,
    updated_at DOUBLE PRECISION NOT NULL
);
