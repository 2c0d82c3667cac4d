-- The consumer runtime's inbox: one row per (consumer, message) whose effects were committed,
-- so a redelivered message is recognised and acked without running its handler again.
CREATE TABLE IF NOT EXISTS warren_inbox (
    consumer text NOT NULL,
    message_id text NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, message_id)
);
