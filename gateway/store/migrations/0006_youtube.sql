-- YouTube comments connector: one polling checkpoint per (tenant, source).
-- source is 'channel:<UC…>' or 'video:<id>'; state is the JSON of
-- connectors.youtube.checkpoint.Checkpoint (high-water mark, seen comment ids, tracked threads).
-- No foreign key to tenants; the tenant_id column is enough for the retention purge
-- (gateway/privacy/store.py deletes from every table with a tenant_id column).

CREATE TABLE youtube_checkpoints (
    tenant_id TEXT NOT NULL,
    source TEXT NOT NULL,
    state TEXT NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (tenant_id, source)
);
