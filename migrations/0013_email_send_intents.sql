-- An email's row is written before the call to the provider (its intent) and completed
-- after the answer, so an email whose outcome is unknown is never sent again blindly.
-- state: 'sending' (intent, or an attempt cut off), 'sent', 'unknown' (no answer).
-- replayed: the x-warren-replayed count of the delivery that wrote the intent; a later
-- replay from the dead-letter queue takes the intent over and sends again.
ALTER TABLE email_sends
    ADD COLUMN state text NOT NULL DEFAULT 'sent' CHECK (state IN ('sending', 'sent', 'unknown')),
    ADD COLUMN replayed bigint NOT NULL DEFAULT 0;
