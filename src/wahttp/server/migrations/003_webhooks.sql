-- Webhooks: a signing secret per session and the outbox of deliveries (server/webhooks.py).
--
-- Every session gets its own random secret: the volatile default is evaluated once per row,
-- so rows that exist now (ours, or the Node.js original's) each get a different one, and so
-- does every row inserted later, also by a client that does not know this column.
-- gen_random_uuid() draws from PostgreSQL's strong random source (pg_strong_random); two of
-- them give 64 hex digits with 244 random bits. The code also fills in a NULL on first use.
ALTER TABLE sessions ADD COLUMN IF NOT EXISTS webhook_secret TEXT
    DEFAULT replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', '');

-- One row per (event, target URL): an event for a session with its own webhook and a global
-- webhook is two rows, tracked and retried independently. Both carry the same event_id, the
-- id receivers deduplicate on. The URL and the secret are resolved when the event is
-- enqueued (the secret is re-read at delivery; the stored one is used once the target has
-- none, e.g. after the session was deleted).
--
-- session_id has no foreign key on purpose: deleting a session must not drop events already
-- queued for it (its last session.status event among them); they are still delivered, and
-- pruned with the rest of the outbox. It is NULL for events that belong to no session.
--
-- status: 'pending' (waiting or being delivered), 'delivered' (a 2xx answer) or 'dead'
-- (410 Gone, or max attempts reached). A worker claims due rows with FOR UPDATE SKIP LOCKED
-- and sets locked_until/claim_token; a worker that dies mid-delivery leaves a lease that
-- expires at locked_until, after which any worker claims the row again. attempts counts
-- claims, so a row that crashes its worker still ends dead.
CREATE TABLE IF NOT EXISTS webhook_outbox (
    id BIGSERIAL PRIMARY KEY,
    event_id UUID NOT NULL,
    event_type TEXT NOT NULL CHECK (event_type ~ '^[a-z][a-z0-9_.]{0,63}$'),
    session_id TEXT,
    occurred_at TIMESTAMPTZ NOT NULL,
    payload JSONB NOT NULL,
    target TEXT NOT NULL CHECK (target IN ('session', 'global')),
    url TEXT NOT NULL CHECK (url ~* '^https?://'),
    secret TEXT,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    locked_until TIMESTAMPTZ,
    claim_token UUID,
    last_status INTEGER,
    last_error TEXT,
    delivered_at TIMESTAMPTZ,
    UNIQUE (event_id, url)
);

-- The claim query: due pending rows, oldest first.
CREATE INDEX IF NOT EXISTS webhook_outbox_due
    ON webhook_outbox (next_attempt_at, id) WHERE status = 'pending';
-- GET /sessions/{id}/webhook/deliveries: a session's rows, newest first.
CREATE INDEX IF NOT EXISTS webhook_outbox_session
    ON webhook_outbox (session_id, id DESC);
-- Pruning old delivered and dead rows.
CREATE INDEX IF NOT EXISTS webhook_outbox_finished
    ON webhook_outbox (created_at) WHERE status <> 'pending';
