-- users.projection: the current state of every user, built from user.* events.
-- Out-of-order safe: each column remembers the time of the event that set it, so it
-- ends at the newest known value whatever order the events arrive in; last_event_time
-- is the newest event applied to the row.
CREATE TABLE users (
    id               text PRIMARY KEY,
    name             text,
    email            text,
    created_at       timestamptz,
    updated_at       timestamptz,
    deleted_at       timestamptz,
    last_event_time  timestamptz NOT NULL,
    name_event_time  timestamptz,
    email_event_time timestamptz
);
