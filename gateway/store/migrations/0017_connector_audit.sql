-- Who changed or tested which inbox, and what (connectors/audit.py): one row per `channel
-- add|update|rotate|disable|enable|remove|test`, CLI or REST. `fields`: JSON list of the keys
-- changed (never a value) or, for a test, `<check>:ok|failed`. No foreign key to the inbox:
-- the entries of a removed inbox stay; they go with the tenant.
CREATE TABLE connector_audit (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    channel_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    action TEXT NOT NULL,
    actor TEXT NOT NULL,
    fields TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL
);

CREATE INDEX connector_audit_tenant_idx ON connector_audit (tenant_id, at);
