-- Outbound webhooks: subscriptions, the events they are sent, each subscription's
-- deliveries (pending until delivered or failed) and every attempt (the delivery log).
CREATE TABLE warren_webhook_subscriptions (
    id                         text PRIMARY KEY,
    url                        text NOT NULL,
    event_patterns             text[] NOT NULL,
    description                text,
    -- Needed in clear to sign; readable only by who can read the database.
    secret                     text NOT NULL,
    previous_secret            text,
    previous_secret_expires_at timestamptz,
    enabled                    boolean NOT NULL DEFAULT true,
    disabled_reason            text,
    -- Set by the first failure after a success; a subscription failing for long enough is disabled.
    failing_since              timestamptz,
    created_at                 timestamptz NOT NULL DEFAULT now(),
    updated_at                 timestamptz NOT NULL DEFAULT now()
);

-- One row per event fanned out to at least one subscription: its CloudEvent JSON as sent.
CREATE TABLE warren_webhook_events (
    event_id    text PRIMARY KEY,
    event_type  text NOT NULL,
    payload     text NOT NULL,
    traceparent text,
    received_at timestamptz NOT NULL DEFAULT now()
);

-- One row per (subscription, event). `pending` rows are due at next_attempt_at; a
-- dispatcher sending one pushes next_attempt_at past its timeout first (the lease), so a
-- dispatcher killed mid-request leaves the row pending, never lost.
CREATE TABLE warren_webhook_deliveries (
    subscription_id text NOT NULL REFERENCES warren_webhook_subscriptions (id) ON DELETE CASCADE,
    event_id        text NOT NULL REFERENCES warren_webhook_events (event_id),
    webhook_id      text NOT NULL,
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    PRIMARY KEY (subscription_id, event_id)
);
-- A dispatcher claims each subscription's oldest due deliveries.
CREATE INDEX warren_webhook_deliveries_due ON warren_webhook_deliveries (subscription_id, next_attempt_at) WHERE status = 'pending';
CREATE INDEX warren_webhook_deliveries_event ON warren_webhook_deliveries (event_id);

CREATE TABLE warren_webhook_attempts (
    id              bigserial PRIMARY KEY,
    subscription_id text NOT NULL REFERENCES warren_webhook_subscriptions (id) ON DELETE CASCADE,
    event_id        text NOT NULL,
    attempt         integer NOT NULL,
    attempted_at    timestamptz NOT NULL,
    status_code     integer,
    latency_ms      double precision NOT NULL,
    outcome         text NOT NULL,
    error           text
);
CREATE INDEX warren_webhook_attempts_subscription ON warren_webhook_attempts (subscription_id, id);
