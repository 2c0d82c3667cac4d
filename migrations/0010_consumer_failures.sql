-- The last message failure of each consumer (retried or dead-lettered), for `warren status`.
-- One row per consumer, overwritten by each failure; written beside the consumer's loop,
-- never in its transactions.
CREATE TABLE warren_consumer_failures (
    consumer     text PRIMARY KEY,
    message_id   text,
    event_type   text,
    error_type   text NOT NULL,
    error        text NOT NULL,
    destination  text NOT NULL,
    failed_at    timestamptz NOT NULL
);
