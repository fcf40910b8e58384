-- Messages this service sent or received: ids, chat and delivery status (no bodies).
CREATE TABLE IF NOT EXISTS messages (
    session_id  text        NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    id          text        NOT NULL,
    chat        text        NOT NULL,
    from_me     boolean     NOT NULL,
    status      text        NOT NULL,
    sent_at     timestamptz,
    delivered_at timestamptz,
    read_at     timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (session_id, id),
    CONSTRAINT messages_status CHECK (status IN ('pending', 'sent', 'delivered', 'read', 'played', 'failed', 'received'))
);
