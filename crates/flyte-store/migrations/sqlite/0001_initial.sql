-- Flyte-RS metadata store, SQLite. Timestamps are INTEGER microseconds since the Unix epoch
-- (UTC), so they sort and compare numerically. Text compares with SQLite's BINARY collation,
-- matching the `COLLATE "C"` columns of the PostgreSQL schema.
-- Every table has its own migration history from here on: new tables (executions, node and
-- task executions, signals, cache) come as new numbered files in this directory and in
-- ../postgres, with the same version numbers.

CREATE TABLE projects (
    identifier  TEXT    NOT NULL PRIMARY KEY,
    name        TEXT    NOT NULL,
    description TEXT    NOT NULL DEFAULT '',
    labels      BLOB    NOT NULL DEFAULT x'',
    state       INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL
);
CREATE INDEX projects_created_at ON projects (created_at, identifier);

-- Tasks (1), workflows (2) and launch plans (3): immutable versions; only a launch plan's
-- state changes. `id` is a stable surrogate key for later foreign keys (executions).
CREATE TABLE entities (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    resource_type INTEGER NOT NULL CHECK (resource_type IN (1, 2, 3)),
    project       TEXT    NOT NULL REFERENCES projects (identifier),
    domain        TEXT    NOT NULL,
    name          TEXT    NOT NULL,
    version       TEXT    NOT NULL,
    digest        BLOB    NOT NULL,
    spec          BLOB    NOT NULL,
    closure       BLOB    NOT NULL,
    state         INTEGER CHECK ((resource_type = 3) = (state IS NOT NULL)),
    created_at    INTEGER NOT NULL
);
CREATE UNIQUE INDEX entities_key ON entities (resource_type, project, domain, name, version);
-- Versions of one name, newest first (List* with a name, filters on version/created_at).
CREATE INDEX entities_name_created ON entities (resource_type, project, domain, name, created_at, id);
-- All entities of a project/domain, newest first (List*Ids, List* without a name).
CREATE INDEX entities_scope_created ON entities (resource_type, project, domain, created_at, id);
-- At most one active version per launch plan; also the lookup for GetActiveLaunchPlan.
CREATE UNIQUE INDEX entities_active_launch_plan ON entities (project, domain, name)
    WHERE resource_type = 3 AND state = 1;

CREATE TABLE named_entity_metadata (
    resource_type INTEGER NOT NULL CHECK (resource_type IN (1, 2, 3)),
    project       TEXT    NOT NULL REFERENCES projects (identifier),
    domain        TEXT    NOT NULL,
    name          TEXT    NOT NULL,
    description   TEXT    NOT NULL DEFAULT '',
    state         INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (resource_type, project, domain, name)
);

INSERT INTO projects (identifier, name, description, labels, state, created_at)
VALUES ('flytesnacks', 'flytesnacks', 'flytesnacks description', x'', 0,
        CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER));
