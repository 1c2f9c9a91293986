-- Dead letters per status and event type, kept by triggers in the same transaction as every
-- insert, status change and delete: the counts on /metrics, the relay status and the console
-- read a handful of rows instead of grouping every dead letter ever recorded.
CREATE TABLE dead_letter_counts (
    status     TEXT    NOT NULL,
    event_type TEXT    NOT NULL,
    n          INTEGER NOT NULL CHECK (n >= 0),
    PRIMARY KEY (status, event_type)
) WITHOUT ROWID;

INSERT INTO dead_letter_counts (status, event_type, n)
SELECT status, event_type, count(*)
FROM dead_letters
GROUP BY status, event_type;

CREATE TRIGGER dead_letter_counts_insert AFTER INSERT ON dead_letters
BEGIN
    INSERT INTO dead_letter_counts (status, event_type, n)
    VALUES (NEW.status, NEW.event_type, 1)
    ON CONFLICT (status, event_type) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER dead_letter_counts_update AFTER UPDATE OF status, event_type ON dead_letters
WHEN OLD.status IS NOT NEW.status OR OLD.event_type IS NOT NEW.event_type
BEGIN
    UPDATE dead_letter_counts SET n = n - 1
    WHERE status = OLD.status AND event_type = OLD.event_type;
    INSERT INTO dead_letter_counts (status, event_type, n)
    VALUES (NEW.status, NEW.event_type, 1)
    ON CONFLICT (status, event_type) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER dead_letter_counts_delete AFTER DELETE ON dead_letters
BEGIN
    UPDATE dead_letter_counts SET n = n - 1
    WHERE status = OLD.status AND event_type = OLD.event_type;
END;
