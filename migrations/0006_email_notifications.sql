-- email.notifications: one row per email a provider accepted, keyed by (event, kind).
-- Written on its own connection right after the provider's answer, outside the batch
-- transaction, so that it survives a rollback and a redelivered event skips the email.
CREATE TABLE email_sends (
    event_id            text NOT NULL,
    kind                text NOT NULL,
    provider            text NOT NULL,
    provider_message_id text,
    user_id             text,
    sent_at             timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, kind)
);

-- The log email provider (no SENDGRID_API_KEY): every would-be email, for development.
CREATE TABLE email_log (
    message_id    text PRIMARY KEY,
    recipient     text NOT NULL,
    sender        text NOT NULL,
    subject       text,
    body          text,
    template_id   text,
    template_data jsonb,
    logged_at     timestamptz NOT NULL DEFAULT now()
);
