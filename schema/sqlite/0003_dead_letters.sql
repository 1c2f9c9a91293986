-- The dead letter queue: events the relay could not publish while the sink was healthy
-- (a permanent error, or retries exhausted with the circuit breaker closed). The relay's
-- checkpoint moves past them in the same write that stores them here, so the stream goes on;
-- operators review them and replay or discard them.
CREATE TABLE dead_letters (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    position          INTEGER NOT NULL UNIQUE,  -- the event's commit position in the outbox
    -- A copy of the event envelope, so a record outlives outbox retention.
    event_id          TEXT    NOT NULL UNIQUE,
    event_type        TEXT    NOT NULL,
    aggregate_type    TEXT    NOT NULL,
    aggregate_id      TEXT    NOT NULL,         -- this aggregate's per-key order is broken
    aggregate_version INTEGER NOT NULL,
    payload           TEXT    NOT NULL,
    occurred_at       TEXT    NOT NULL,
    schema_version    INTEGER NOT NULL,
    error_kind        TEXT    NOT NULL CHECK (error_kind IN ('permanent', 'retries_exhausted')),
    error_message     TEXT    NOT NULL,
    failure_count     INTEGER NOT NULL CHECK (failure_count >= 1),
    first_failed_at   TEXT    NOT NULL,
    last_failed_at    TEXT    NOT NULL,
    status            TEXT    NOT NULL DEFAULT 'pending'
                              CHECK (status IN ('pending', 'replayed', 'discarded')),
    discard_reason    TEXT,
    updated_at        TEXT    NOT NULL
);
CREATE INDEX dead_letters_by_status ON dead_letters (status, id);
CREATE INDEX dead_letters_by_aggregate ON dead_letters (aggregate_id, id);

-- Every replay attempt of a dead letter, with its outcome.
CREATE TABLE dead_letter_attempts (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    dead_letter_id INTEGER NOT NULL REFERENCES dead_letters (id),
    attempted_at   TEXT    NOT NULL,
    outcome        TEXT    NOT NULL CHECK (outcome IN ('delivered', 'failed')),
    detail         TEXT    NOT NULL             -- where it went, or why it failed
);
CREATE INDEX dead_letter_attempts_by_letter ON dead_letter_attempts (dead_letter_id, id);
