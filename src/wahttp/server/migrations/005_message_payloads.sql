-- The encoded Message of what we sent, kept so a retry receipt can be answered after a restart.
ALTER TABLE messages ADD COLUMN IF NOT EXISTS payload bytea;
