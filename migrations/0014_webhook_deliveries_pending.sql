-- A delivery is pending exactly while it has no finished_at: every writer already kept
-- this, and now the table enforces it. The statements that find deliveries by key (record,
-- claim, release) fence on `finished_at IS NULL` instead of `status = 'pending'`: with
-- the status test the planner may scan the partial index warren_webhook_deliveries_due
-- (every pending row) once per batch row when its statistics think few are pending,
-- which a burst after a quiet spell makes seconds slow. The claim's search for due
-- deliveries keeps `status = 'pending'` and so that index.
ALTER TABLE warren_webhook_deliveries
    ADD CONSTRAINT warren_webhook_deliveries_pending_unfinished CHECK ((status = 'pending') = (finished_at IS NULL));
