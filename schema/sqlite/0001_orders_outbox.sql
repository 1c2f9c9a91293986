-- Orders, their outbox events, and idempotency keys.
-- Applied once by the program at start-up (tracked in PRAGMA user_version).

-- The order aggregate. `seq` orders the list newest-first and is the pagination cursor.
CREATE TABLE orders (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    id            TEXT    NOT NULL UNIQUE,
    customer_id   TEXT    NOT NULL,
    status        TEXT    NOT NULL CHECK (status IN ('created', 'cancelled')),
    version       INTEGER NOT NULL CHECK (version >= 1),
    items         TEXT    NOT NULL,           -- JSON array of {sku, quantity, unit_price_cents}
    cancel_reason TEXT,
    created_at    TEXT    NOT NULL,           -- RFC 3339, UTC, microseconds
    updated_at    TEXT    NOT NULL
);

-- The outbox. `position` is the commit position: assigned by the single writer inside the
-- transaction, so it is gap-free and in commit order; AUTOINCREMENT keeps it from ever being
-- reused after old rows are deleted.
CREATE TABLE outbox (
    position          INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id          TEXT    NOT NULL UNIQUE,
    aggregate_type    TEXT    NOT NULL,
    aggregate_id      TEXT    NOT NULL,
    aggregate_version INTEGER NOT NULL CHECK (aggregate_version >= 1),
    event_type        TEXT    NOT NULL,
    payload           TEXT    NOT NULL,       -- JSON object
    occurred_at       TEXT    NOT NULL,
    schema_version    INTEGER NOT NULL,
    -- exactly one event per aggregate version
    UNIQUE (aggregate_id, aggregate_version)
);

-- Idempotency-Key header values of order creations: the same key and request give the same
-- order; the same key with another request is refused.
CREATE TABLE idempotency_keys (
    key         TEXT NOT NULL PRIMARY KEY,
    fingerprint TEXT NOT NULL,                -- SHA-256 of the validated request
    order_id    TEXT NOT NULL,
    created_at  TEXT NOT NULL
) WITHOUT ROWID;

-- One row the readiness probe rewrites through the writer, proving the store takes writes.
CREATE TABLE store_probe (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    checked_at TEXT NOT NULL
);
INSERT INTO store_probe (id, checked_at) VALUES (1, '');
