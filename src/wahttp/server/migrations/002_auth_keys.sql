-- Our additions. Live status is kept in memory, never here.
--
-- auth_format says where a session's auth state lives:
--   'legacy': the original's auth_json ({"creds.json": {...}, "<category>-<id>.json": {...}});
--             rows the Node.js version writes get this default;
--   'keys':   the creds column plus one auth_keys row per key. A legacy row is converted on
--             its first load; auth_json is then kept as it was, but no longer read or written.
ALTER TABLE sessions ADD COLUMN IF NOT EXISTS webhook_url TEXT;
ALTER TABLE sessions ADD COLUMN IF NOT EXISTS push_name TEXT;
ALTER TABLE sessions ADD COLUMN IF NOT EXISTS auth_format TEXT NOT NULL DEFAULT 'legacy';
-- creds.json's object in Baileys' BufferJSON form (bytes as {"type":"Buffer","data":b64}).
ALTER TABLE sessions ADD COLUMN IF NOT EXISTS creds JSONB;

-- NOT VALID: enforced for new and updated rows; rows the original wrote are not re-checked.
ALTER TABLE sessions ADD CONSTRAINT sessions_id_not_empty CHECK (id <> '') NOT VALID;
ALTER TABLE sessions ADD CONSTRAINT sessions_auth_format_known
    CHECK (auth_format IN ('legacy', 'keys'));
ALTER TABLE sessions ADD CONSTRAINT sessions_creds_is_object
    CHECK (creds IS NULL OR jsonb_typeof(creds) = 'object');

-- One row per key of Baileys' SignalKeyStore. key_id is in file-name form (fixFileName:
-- '/' -> '__', ':' -> '-'), as in the original's auth_json and in an auth folder.
CREATE TABLE IF NOT EXISTS auth_keys (
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    category TEXT NOT NULL CHECK (category ~ '^[a-z][a-z0-9-]{0,63}$'),
    key_id TEXT NOT NULL CHECK (key_id <> '' AND key_id !~ '[/:]'),
    value JSONB NOT NULL,
    PRIMARY KEY (session_id, category, key_id)
);
