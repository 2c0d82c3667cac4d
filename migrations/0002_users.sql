-- users.projection: the current state of every user, built from user.* events.
-- last_event_time makes it out-of-order safe: an event older than it changes nothing
-- (except filling a column that is still unknown).
CREATE TABLE users (
    id              text PRIMARY KEY,
    name            text,
    email           text,
    created_at      timestamptz,
    updated_at      timestamptz,
    deleted_at      timestamptz,
    last_event_time timestamptz NOT NULL
);
