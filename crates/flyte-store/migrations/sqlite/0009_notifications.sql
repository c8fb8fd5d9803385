-- The notification outbox (crates/flyte-notify, docs/notifications.md). A row is written in
-- the same transaction as an execution's move to a terminal phase (SUCCEEDED, FAILED,
-- TIMED_OUT, ABORTED), keyed by (execution, phase): writing that phase again adds nothing, so
-- one phase change gives one notification. The delivery loop claims due rows with a lease
-- (owner, lease_until), decides from the execution's spec and launch plan what to send, and
-- records the destinations already delivered, so a retry sends only the rest. Times are
-- microseconds since the epoch, from the writer's clock.

CREATE TABLE notification_outbox (
    project     TEXT    NOT NULL,
    domain      TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    phase       TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    -- When the next attempt may run.
    due_at      INTEGER NOT NULL,
    -- 0 pending, 1 delivered (or nothing to send), 2 gave up.
    state       INTEGER NOT NULL DEFAULT 0,
    attempts    INTEGER NOT NULL DEFAULT 0,
    -- Destinations already delivered, one per line.
    delivered   TEXT    NOT NULL DEFAULT '',
    last_error  TEXT    NOT NULL DEFAULT '',
    owner       TEXT    NOT NULL DEFAULT '',
    lease_until INTEGER,
    PRIMARY KEY (project, domain, name, phase)
);

CREATE INDEX notification_outbox_due ON notification_outbox (state, due_at);
