-- The relay's state and the embedded topic log.

-- The embedded sink used when no Kafka brokers are configured: one append-only log per topic.
-- `log_offset` counts from 0 per topic, like a single-partition Kafka topic.
CREATE TABLE topic_messages (
    topic       TEXT    NOT NULL,
    log_offset  INTEGER NOT NULL,
    message_key TEXT    NOT NULL,             -- the aggregate id: per-aggregate order
    value       TEXT    NOT NULL,             -- the event payload (JSON)
    headers     TEXT    NOT NULL,             -- JSON object of header name → value
    appended_at TEXT    NOT NULL,
    PRIMARY KEY (topic, log_offset)
) WITHOUT ROWID;

-- How far each relay got: the last commit position its sink acknowledged.
CREATE TABLE relay_checkpoints (
    relay      TEXT    NOT NULL PRIMARY KEY,
    position   INTEGER NOT NULL,
    updated_at TEXT    NOT NULL
) WITHOUT ROWID;

-- Where each published event went, for the order pages. Written with the checkpoint.
CREATE TABLE deliveries (
    position     INTEGER PRIMARY KEY,         -- the event's commit position
    topic        TEXT    NOT NULL,
    partition    INTEGER,                     -- unknown for some sinks
    log_offset   INTEGER,
    published_at TEXT    NOT NULL
);
