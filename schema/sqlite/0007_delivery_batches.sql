-- Where the relay's batches went: a row per recorded batch (per 100 events of it), instead of
-- one `deliveries` row per event (that insert was a fifth of the relay's work per event).
-- `entries` packs, for each acknowledged event of the batch in commit order, its position,
-- the index of its topic in `topics`, its partition, its offset and when the sink
-- acknowledged it (layout: `store::sqlite::progress`). Single deliveries (dead-letter replays)
-- stay in `deliveries`, which is read first.
CREATE TABLE delivery_batches (
    first_position INTEGER PRIMARY KEY,       -- the batch's first acknowledged position
    last_position  INTEGER NOT NULL,          -- and its last
    topics         TEXT    NOT NULL,          -- the batch's topics, one per line
    entries        BLOB    NOT NULL
);
