-- Edit and replay: an operator may correct a pending dead letter's payload before replaying
-- it. The original stays in `payload` (what the relay tried to publish); a replay publishes
-- `edited_payload` instead when it is set, with the same event id and envelope.
ALTER TABLE dead_letters ADD COLUMN edited_payload TEXT;
ALTER TABLE dead_letters ADD COLUMN edited_at TEXT;
