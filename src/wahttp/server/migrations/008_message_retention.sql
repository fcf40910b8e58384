-- Retention (server/retention.py) deletes messages by age, a bounded batch at a time.
CREATE INDEX IF NOT EXISTS messages_created ON messages (created_at);
