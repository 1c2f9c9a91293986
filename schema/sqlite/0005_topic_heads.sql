-- Each topic of the embedded log with how many messages it holds and its offsets, kept in the
-- same transaction as every append and every retention delete: listing the topics reads one
-- row per topic instead of grouping the whole log.
CREATE TABLE topic_heads (
    topic        TEXT    NOT NULL PRIMARY KEY,
    messages     INTEGER NOT NULL,            -- messages still in the log
    first_offset INTEGER NOT NULL,            -- the oldest offset still in the log
    next_offset  INTEGER NOT NULL             -- the offset the next message gets
) WITHOUT ROWID;

INSERT INTO topic_heads (topic, messages, first_offset, next_offset)
SELECT topic, count(*), min(log_offset), max(log_offset) + 1
FROM topic_messages
GROUP BY topic;
