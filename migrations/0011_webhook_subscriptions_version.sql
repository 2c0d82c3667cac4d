-- A version of what the webhook fan-out matches (which subscriptions are enabled, and
-- their patterns), bumped by a trigger on every change that matters. The fan-out reads
-- this one row per batch and takes the list itself from its cache (Redis, or the
-- process) under that version: a change is seen by the next batch, whoever made it and
-- whether or not Redis was told.
CREATE TABLE warren_webhook_subscriptions_version (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    version bigint NOT NULL
);
INSERT INTO warren_webhook_subscriptions_version (version) VALUES (1);

CREATE FUNCTION warren_webhook_subscriptions_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE warren_webhook_subscriptions_version SET version = version + 1;
    RETURN NULL;
END
$$;

CREATE TRIGGER warren_webhook_subscriptions_added_or_removed
    AFTER INSERT OR DELETE ON warren_webhook_subscriptions
    FOR EACH STATEMENT EXECUTE FUNCTION warren_webhook_subscriptions_bump();

-- Only what the fan-out reads: the dispatcher's failure records change other columns.
CREATE TRIGGER warren_webhook_subscriptions_changed
    AFTER UPDATE ON warren_webhook_subscriptions
    FOR EACH ROW WHEN (OLD.enabled IS DISTINCT FROM NEW.enabled OR OLD.event_patterns IS DISTINCT FROM NEW.event_patterns)
    EXECUTE FUNCTION warren_webhook_subscriptions_bump();
