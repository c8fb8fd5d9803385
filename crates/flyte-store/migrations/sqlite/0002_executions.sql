-- Executions, node and task executions, and the engine's journal. Payloads (spec, closures,
-- metadata, engine state) are opaque protobuf bytes; the other columns are what lists filter
-- and sort on. Phases are the flyteidl enum names (`RUNNING`), as flyteadmin keeps them.

CREATE TABLE executions (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    project             TEXT    NOT NULL REFERENCES projects (identifier),
    domain              TEXT    NOT NULL,
    name                TEXT    NOT NULL,
    launch_plan_project TEXT,
    launch_plan_domain  TEXT,
    launch_plan_name    TEXT,
    launch_plan_version TEXT,
    workflow_project    TEXT,
    workflow_domain     TEXT,
    workflow_name       TEXT,
    workflow_version    TEXT,
    task_project        TEXT,
    task_domain         TEXT,
    task_name           TEXT,
    task_version        TEXT,
    phase               TEXT    NOT NULL,
    mode                INTEGER NOT NULL DEFAULT 0,
    state               INTEGER NOT NULL DEFAULT 0,
    principal           TEXT    NOT NULL DEFAULT '',
    parent_execution    TEXT,
    parent_node_id      TEXT,
    spec                BLOB    NOT NULL,
    closure             BLOB    NOT NULL,
    inputs_uri          TEXT    NOT NULL DEFAULT '',
    user_inputs_uri     TEXT    NOT NULL DEFAULT '',
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    started_at          INTEGER
);
CREATE UNIQUE INDEX executions_key ON executions (project, domain, name);
-- ListExecutions: newest first in a project/domain, optionally by phase or launch entity.
CREATE INDEX executions_scope_created ON executions (project, domain, created_at, id);
CREATE INDEX executions_scope_phase ON executions (project, domain, phase, created_at);
CREATE INDEX executions_launch_plan ON executions (project, domain, launch_plan_name, created_at);
CREATE INDEX executions_workflow ON executions (project, domain, workflow_name, created_at);

CREATE TABLE node_executions (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    project          TEXT    NOT NULL,
    domain           TEXT    NOT NULL,
    execution_name   TEXT    NOT NULL,
    node_id          TEXT    NOT NULL,
    parent_node_id   TEXT,
    phase            TEXT    NOT NULL,
    closure          BLOB    NOT NULL,
    metadata         BLOB    NOT NULL,
    input_uri        TEXT    NOT NULL DEFAULT '',
    dynamic_workflow BLOB,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    started_at       INTEGER,
    FOREIGN KEY (project, domain, execution_name) REFERENCES executions (project, domain, name)
);
CREATE UNIQUE INDEX node_executions_key ON node_executions (project, domain, execution_name, node_id);
-- ListNodeExecutions: top level (parent NULL) or the children of one parent.
CREATE INDEX node_executions_parent ON node_executions (project, domain, execution_name, parent_node_id, created_at, id);

CREATE TABLE task_executions (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    project        TEXT    NOT NULL,
    domain         TEXT    NOT NULL,
    execution_name TEXT    NOT NULL,
    node_id        TEXT    NOT NULL,
    task_project   TEXT    NOT NULL,
    task_domain    TEXT    NOT NULL,
    task_name      TEXT    NOT NULL,
    task_version   TEXT    NOT NULL,
    retry_attempt  INTEGER NOT NULL,
    phase          TEXT    NOT NULL,
    phase_version  INTEGER NOT NULL DEFAULT 0,
    closure        BLOB    NOT NULL,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    started_at     INTEGER,
    FOREIGN KEY (project, domain, execution_name, node_id)
        REFERENCES node_executions (project, domain, execution_name, node_id)
);
-- The key; also ListTaskExecutions of one node (its prefix).
CREATE UNIQUE INDEX task_executions_key ON task_executions
    (project, domain, execution_name, node_id, task_project, task_domain, task_name, task_version, retry_attempt);

-- The engine's journal: the run request and execution-level state of every execution it has
-- not finished, and the state of each of their node instances.
CREATE TABLE engine_executions (
    project        TEXT NOT NULL,
    domain         TEXT NOT NULL,
    name           TEXT NOT NULL,
    request        BLOB NOT NULL,
    workflow_state BLOB,
    pending_abort  TEXT,
    PRIMARY KEY (project, domain, name),
    FOREIGN KEY (project, domain, name) REFERENCES executions (project, domain, name)
);

CREATE TABLE engine_node_state (
    project        TEXT NOT NULL,
    domain         TEXT NOT NULL,
    execution_name TEXT NOT NULL,
    node_id        TEXT NOT NULL,
    state          BLOB NOT NULL,
    PRIMARY KEY (project, domain, execution_name, node_id)
);
