-- payments.ledger: one row per payment; amount and currency never change once recorded.
CREATE TABLE payments (
    payment_id      text PRIMARY KEY,
    user_id         text NOT NULL,
    amount          bigint NOT NULL CHECK (amount >= 0),
    currency        char(3) NOT NULL,
    status          text NOT NULL CHECK (status IN ('succeeded', 'failed')),
    failure_code    text,
    failure_message text,
    occurred_at     timestamptz NOT NULL
);
CREATE INDEX payments_user_id ON payments (user_id);
