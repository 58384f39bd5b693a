-- IZIMessage widget: per-tenant widget settings and uploaded attachments.
-- Files themselves live under DATA_DIR/uploads/<tenant>/; rows hold their metadata.

CREATE TABLE widget_settings (
    tenant_id TEXT PRIMARY KEY REFERENCES tenants (id),
    settings TEXT NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);

-- conversation_id: the conversation the upload was first attached to (NULL until then);
-- an upload is attached only within that conversation.
CREATE TABLE uploads (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    uploader_type TEXT NOT NULL,
    uploader_id TEXT NOT NULL,
    conversation_id TEXT,
    name TEXT NOT NULL,
    mime_type TEXT NOT NULL,
    size BIGINT NOT NULL,
    path TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    UNIQUE (tenant_id, id)
);

CREATE INDEX uploads_tenant_conversation_idx ON uploads (tenant_id, conversation_id);
