-- Why a sent message failed: the error code of the server's ack (463, 479, ...) and what it means.
ALTER TABLE messages ADD COLUMN IF NOT EXISTS error_code integer;
ALTER TABLE messages ADD COLUMN IF NOT EXISTS error_reason text;
