-- The W3C trace context of the request that caused each event (`traceparent`, and the
-- caller's `tracestate` if it sent one), sent with the published record so consumers continue
-- the request's trace. Empty for events stored before this migration. Dead letters keep a
-- copy, so a replay carries it too.
ALTER TABLE outbox ADD COLUMN traceparent TEXT;
ALTER TABLE outbox ADD COLUMN tracestate TEXT;
ALTER TABLE dead_letters ADD COLUMN traceparent TEXT;
ALTER TABLE dead_letters ADD COLUMN tracestate TEXT;
