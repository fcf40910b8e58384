-- API keys that reach one session each (server/auth.py). The admin key is not stored here.
--
-- Only the SHA-256 digest of a key is kept (keys are 256-bit random strings, so a plain hash
-- is enough). `prefix` is the key's first characters: not secret, it finds the row and names
-- the key in lists; the digest is then compared in constant time. Deleting a session deletes
-- its keys.
CREATE TABLE IF NOT EXISTS api_keys (
    id          uuid        PRIMARY KEY,
    session_id  text        NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    name        text,
    prefix      text        NOT NULL,
    key_hash    bytea       NOT NULL UNIQUE CHECK (octet_length(key_hash) = 32),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS api_keys_prefix ON api_keys (prefix);
CREATE INDEX IF NOT EXISTS api_keys_session ON api_keys (session_id, created_at);
