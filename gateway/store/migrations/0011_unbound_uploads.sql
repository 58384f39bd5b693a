-- Uploads never attached to a message are deleted after UPLOAD_ORPHAN_TTL
-- (gateway/widget/uploads.py, `Uploads.sweep_orphans`): the sweep finds them, oldest first,
-- in this partial index (bound uploads, nearly all of them, have no entry).

CREATE INDEX uploads_unbound_idx ON uploads (created_at) WHERE conversation_id IS NULL;
