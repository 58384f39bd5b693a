-- Privacy (issue 7): per-tenant retention policy and the audit trail of data-subject
-- requests and retention runs. The audit refers to tenants by `tenant_ref` (not a
-- tenant_id column, no foreign key) so it outlives the tenant's data; it holds ids and
-- counts only, never personal data.

CREATE TABLE privacy_policies (
    tenant_id TEXT PRIMARY KEY REFERENCES tenants (id),
    message_retention_days INTEGER,
    erase_mode TEXT NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);

CREATE TABLE privacy_audit (
    id TEXT PRIMARY KEY,
    tenant_ref TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT NOT NULL,
    details TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
);

CREATE INDEX privacy_audit_tenant_idx ON privacy_audit (tenant_ref, created_at);
