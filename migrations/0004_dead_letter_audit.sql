-- Every `warren dlq replay` and `warren dlq purge`: who, when, which queue, with which
-- selectors, and the ids of the messages it moved or removed. A row is written when the
-- operation starts and each message id is appended once that message is settled, so an
-- interrupted operation still shows what it did (finished_at stays NULL).
CREATE TABLE warren_dlq_audit (
    id          bigserial PRIMARY KEY,
    action      text NOT NULL CHECK (action IN ('replay', 'purge')),
    actor       text NOT NULL,
    queue       text NOT NULL,
    selectors   jsonb NOT NULL,
    destination text,
    message_ids text[] NOT NULL DEFAULT '{}',
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);
CREATE INDEX warren_dlq_audit_queue ON warren_dlq_audit (queue, started_at);
