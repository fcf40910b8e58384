-- GET /sessions/{id}/chats (server/chats.py): a session's chats are found by skipping through
-- this index (one probe per chat), each chat's last message is its last entry, and unread
-- counts are ranges of it (from_me included so they need not visit the table).
CREATE INDEX IF NOT EXISTS messages_chat_time ON messages (session_id, chat, created_at) INCLUDE (from_me);
-- The newest received message a session sent a read receipt for, per chat (its read marker):
-- only read received messages are in it, so it stays small and the lookup is one probe.
CREATE INDEX IF NOT EXISTS messages_chat_read ON messages (session_id, chat, created_at)
    WHERE read_at IS NOT NULL AND NOT from_me;
-- The sender's push name of a received message (its `notify`): a chat's name when the
-- address book (app state) has none.
ALTER TABLE messages ADD COLUMN IF NOT EXISTS push_name text;
