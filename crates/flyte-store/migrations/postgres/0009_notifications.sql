-- The notification outbox, PostgreSQL. The same table as ../sqlite/0009_notifications.sql
-- (which explains it); keep the two in step.

CREATE TABLE notification_outbox (
    project     TEXT COLLATE "C" NOT NULL,
    domain      TEXT COLLATE "C" NOT NULL,
    name        TEXT COLLATE "C" NOT NULL,
    phase       TEXT COLLATE "C" NOT NULL,
    created_at  TIMESTAMPTZ      NOT NULL,
    due_at      TIMESTAMPTZ      NOT NULL,
    state       INTEGER          NOT NULL DEFAULT 0,
    attempts    INTEGER          NOT NULL DEFAULT 0,
    delivered   TEXT             NOT NULL DEFAULT '',
    last_error  TEXT             NOT NULL DEFAULT '',
    owner       TEXT             NOT NULL DEFAULT '',
    lease_until TIMESTAMPTZ,
    PRIMARY KEY (project, domain, name, phase)
);

CREATE INDEX notification_outbox_due ON notification_outbox (state, due_at);
