-- The transactional outbox: upstream services insert events here in their own transaction
-- (`Outbox.enqueue`), and `warren outbox relay` publishes them in id order with confirms.
-- `event` is the exact CloudEvents JSON (text, not jsonb, so the bytes published are the
-- bytes written). A row is pending until published_at or parked_at is set; parked rows
-- (e.g. unroutable) keep their reason and are never retried automatically.
CREATE TABLE warren_outbox (
    id           bigserial PRIMARY KEY,
    event_id     text NOT NULL,
    event_type   text NOT NULL,
    event        text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz,
    parked_at    timestamptz,
    park_reason  text
);
CREATE INDEX warren_outbox_pending ON warren_outbox (id) WHERE published_at IS NULL AND parked_at IS NULL;
CREATE INDEX warren_outbox_published ON warren_outbox (published_at) WHERE published_at IS NOT NULL;
