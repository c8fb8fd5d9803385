-- Role bindings made over the API and audit records, PostgreSQL. The same tables as
-- ../sqlite/0011_auth.sql (which explains it); keep the two in step.

CREATE TABLE role_bindings (
    id           BIGSERIAL PRIMARY KEY,
    subject_kind TEXT COLLATE "C" NOT NULL,
    subject      TEXT COLLATE "C" NOT NULL,
    role         TEXT COLLATE "C" NOT NULL,
    project      TEXT COLLATE "C" NOT NULL,
    domain       TEXT COLLATE "C" NOT NULL DEFAULT '',
    created_by   TEXT             NOT NULL DEFAULT '',
    created_at   TIMESTAMPTZ      NOT NULL,
    UNIQUE (subject_kind, subject, role, project, domain)
);

CREATE TABLE audit_records (
    id       BIGSERIAL PRIMARY KEY,
    at       TIMESTAMPTZ      NOT NULL,
    subject  TEXT             NOT NULL,
    email    TEXT             NOT NULL DEFAULT '',
    service  TEXT             NOT NULL,
    method   TEXT             NOT NULL,
    project  TEXT COLLATE "C" NOT NULL DEFAULT '',
    domain   TEXT COLLATE "C" NOT NULL DEFAULT '',
    name     TEXT             NOT NULL DEFAULT '',
    code     TEXT             NOT NULL
);
CREATE INDEX audit_records_at ON audit_records (at);
CREATE INDEX audit_records_place ON audit_records (project, domain, at);
