-- Flyte-RS metadata store, PostgreSQL. The same tables, columns and indexes as
-- ../sqlite/0001_initial.sql; keep the two in step (same version numbers, same names).
-- Text keys use COLLATE "C" so sorting is bytewise, as in SQLite.

CREATE TABLE projects (
    identifier  TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    name        TEXT COLLATE "C" NOT NULL,
    description TEXT             NOT NULL DEFAULT '',
    labels      BYTEA            NOT NULL DEFAULT ''::bytea,
    state       INTEGER          NOT NULL DEFAULT 0,
    created_at  TIMESTAMPTZ      NOT NULL
);
CREATE INDEX projects_created_at ON projects (created_at, identifier);

CREATE TABLE entities (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    resource_type INTEGER          NOT NULL CHECK (resource_type IN (1, 2, 3)),
    project       TEXT COLLATE "C" NOT NULL REFERENCES projects (identifier),
    domain        TEXT COLLATE "C" NOT NULL,
    name          TEXT COLLATE "C" NOT NULL,
    version       TEXT COLLATE "C" NOT NULL,
    digest        BYTEA            NOT NULL,
    spec          BYTEA            NOT NULL,
    closure       BYTEA            NOT NULL,
    state         INTEGER CHECK ((resource_type = 3) = (state IS NOT NULL)),
    created_at    TIMESTAMPTZ      NOT NULL
);
CREATE UNIQUE INDEX entities_key ON entities (resource_type, project, domain, name, version);
CREATE INDEX entities_name_created ON entities (resource_type, project, domain, name, created_at, id);
CREATE INDEX entities_scope_created ON entities (resource_type, project, domain, created_at, id);
CREATE UNIQUE INDEX entities_active_launch_plan ON entities (project, domain, name)
    WHERE resource_type = 3 AND state = 1;

CREATE TABLE named_entity_metadata (
    resource_type INTEGER          NOT NULL CHECK (resource_type IN (1, 2, 3)),
    project       TEXT COLLATE "C" NOT NULL REFERENCES projects (identifier),
    domain        TEXT COLLATE "C" NOT NULL,
    name          TEXT COLLATE "C" NOT NULL,
    description   TEXT             NOT NULL DEFAULT '',
    state         INTEGER          NOT NULL DEFAULT 0,
    PRIMARY KEY (resource_type, project, domain, name)
);

INSERT INTO projects (identifier, name, description, labels, state, created_at)
VALUES ('flytesnacks', 'flytesnacks', 'flytesnacks description', ''::bytea, 0,
        date_trunc('microseconds', now()));
