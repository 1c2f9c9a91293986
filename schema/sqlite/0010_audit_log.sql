-- The audit log: every operator action (console sign-in and sign-out, DLQ replays, edits and
-- discards, relay mode, suspension, faults) with who did it (a session's marker, `bearer`, or
-- nobody for a refused sign-in), from which address, on what, and how it ended. Secrets are
-- never stored. The retention sweep deletes entries older than AUDIT_RETENTION.
CREATE TABLE audit_log (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    at       TEXT    NOT NULL,
    session  TEXT,
    address  TEXT    NOT NULL,
    action   TEXT    NOT NULL,
    target   TEXT,
    status   INTEGER NOT NULL,
    outcome  TEXT    NOT NULL CHECK (outcome IN ('ok', 'refused', 'failed'))
);

-- Pages filtered by action (exact or by prefix), newest first.
CREATE INDEX audit_log_action ON audit_log (action, id);
-- The retention sweep, oldest first.
CREATE INDEX audit_log_at ON audit_log (at);
