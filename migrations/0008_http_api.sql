-- warren serve: API keys (only a hash of each key is stored) and the webhook ids already
-- published, so a redelivered webhook is answered without publishing again.
CREATE TABLE warren_api_keys (
    name            text PRIMARY KEY,
    key_hash        text NOT NULL UNIQUE,
    event_patterns  text NOT NULL DEFAULT '',
    admin           boolean NOT NULL DEFAULT false,
    rate_per_second integer CHECK (rate_per_second > 0),
    created_at      timestamptz NOT NULL DEFAULT now(),
    revoked_at      timestamptz
);

CREATE TABLE warren_webhook_receipts (
    source      text NOT NULL,
    webhook_id  text NOT NULL,
    event_id    text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, webhook_id)
);
