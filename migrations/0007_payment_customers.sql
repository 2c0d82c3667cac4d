-- payments.customers: the payment provider's customer for each user.
CREATE TABLE payment_customers (
    user_id     text PRIMARY KEY,
    customer_id text NOT NULL,
    provider    text NOT NULL,
    event_id    text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (provider, customer_id)
);
