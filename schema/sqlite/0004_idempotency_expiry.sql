-- Idempotency keys expire (IDEMPOTENCY_KEY_TTL): the retention sweep deletes the oldest first,
-- found through this index.
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);
