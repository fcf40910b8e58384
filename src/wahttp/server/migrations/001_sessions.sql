-- The Node.js original's table, exactly as its db.js creates it, so a database that the
-- original wrote is picked up as it is (IF NOT EXISTS: its table, with timestamp or
-- timestamptz columns, is left untouched).
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    auth_json JSONB,
    created_at TIMESTAMPTZ DEFAULT now(),
    updated_at TIMESTAMPTZ DEFAULT now()
);
