-- The conversation's subject: an email thread's Subject, set when the conversation is
-- created from its first message (connectors/inbound.py), listed and shown to agents.
-- Conversations created before this migration take the first subject recorded in
-- email_message_ids (migration 0004).

ALTER TABLE conversations ADD COLUMN subject TEXT;

UPDATE conversations SET subject = (
    SELECT e.subject FROM email_message_ids e
    WHERE e.tenant_id = conversations.tenant_id AND e.conversation_id = conversations.id AND e.subject IS NOT NULL
    ORDER BY e.created_at, e.message_id LIMIT 1
) WHERE channel = 'email';
