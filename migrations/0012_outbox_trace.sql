-- The trace an outbox event was enqueued in (W3C traceparent/tracestate of the event, or
-- of the work that enqueued it), published with it by the relay. NULL: none.
ALTER TABLE warren_outbox ADD COLUMN traceparent text, ADD COLUMN tracestate text;
