-- Role bindings made over the API (docs/auth.md, "Roles and bindings"): a user (token `sub`
-- or email) or group bound to a role on a project (`*`: every project) and optionally one
-- domain ('' = every domain). The configuration's bindings are not stored here; both apply.
-- Every replica reads this table (cached a few seconds), so a change needs no restart.

CREATE TABLE role_bindings (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    subject_kind TEXT    NOT NULL,  -- 'user' or 'group'
    subject      TEXT    NOT NULL,
    role         TEXT    NOT NULL,
    project      TEXT    NOT NULL,
    domain       TEXT    NOT NULL DEFAULT '',
    created_by   TEXT    NOT NULL DEFAULT '',
    created_at   INTEGER NOT NULL,
    UNIQUE (subject_kind, subject, role, project, domain)
);

-- The audit trail of mutating calls (who, what, where, the outcome, when), as the `audit` log
-- lines say it, kept for GET /api/v1/auth/audit; rows older than the configured retention
-- are deleted. Times are microseconds since the epoch (as elsewhere).
CREATE TABLE audit_records (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    at       INTEGER NOT NULL,
    subject  TEXT    NOT NULL,
    email    TEXT    NOT NULL DEFAULT '',
    service  TEXT    NOT NULL,
    method   TEXT    NOT NULL,
    project  TEXT    NOT NULL DEFAULT '',
    domain   TEXT    NOT NULL DEFAULT '',
    name     TEXT    NOT NULL DEFAULT '',
    code     TEXT    NOT NULL
);
CREATE INDEX audit_records_at ON audit_records (at);
CREATE INDEX audit_records_place ON audit_records (project, domain, at);
