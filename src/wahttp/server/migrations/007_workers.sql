-- Many workers on one database: each live worker has a row (renewed while it lives, and an
-- advisory lock held on its own connection), and each session at most one owner row naming the
-- worker that runs its socket. A row whose worker is gone is an orphan, taken over by others.
CREATE TABLE IF NOT EXISTS wahttp_workers (
    id          text        PRIMARY KEY,
    url         text,
    lock_key    integer     NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);

CREATE TABLE IF NOT EXISTS wahttp_session_owners (
    session_id  text        PRIMARY KEY REFERENCES sessions(id) ON DELETE CASCADE,
    worker_id   text        NOT NULL,
    state       text        NOT NULL DEFAULT 'created',
    since       timestamptz NOT NULL DEFAULT now(),
    claimed_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS wahttp_session_owners_worker ON wahttp_session_owners (worker_id);
