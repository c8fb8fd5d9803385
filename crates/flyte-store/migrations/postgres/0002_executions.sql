-- Executions, node and task executions, and the engine journal, PostgreSQL. The same
-- tables, columns and indexes as ../sqlite/0002_executions.sql; keep the two in step.
-- Text columns use COLLATE "C" so sorting is bytewise, as in SQLite.

CREATE TABLE executions (
    id                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project             TEXT COLLATE "C" NOT NULL REFERENCES projects (identifier),
    domain              TEXT COLLATE "C" NOT NULL,
    name                TEXT COLLATE "C" NOT NULL,
    launch_plan_project TEXT COLLATE "C",
    launch_plan_domain  TEXT COLLATE "C",
    launch_plan_name    TEXT COLLATE "C",
    launch_plan_version TEXT COLLATE "C",
    workflow_project    TEXT COLLATE "C",
    workflow_domain     TEXT COLLATE "C",
    workflow_name       TEXT COLLATE "C",
    workflow_version    TEXT COLLATE "C",
    task_project        TEXT COLLATE "C",
    task_domain         TEXT COLLATE "C",
    task_name           TEXT COLLATE "C",
    task_version        TEXT COLLATE "C",
    phase               TEXT COLLATE "C" NOT NULL,
    mode                INTEGER NOT NULL DEFAULT 0,
    state               INTEGER NOT NULL DEFAULT 0,
    principal           TEXT COLLATE "C" NOT NULL DEFAULT '',
    parent_execution    TEXT COLLATE "C",
    parent_node_id      TEXT COLLATE "C",
    spec                BYTEA NOT NULL,
    closure             BYTEA NOT NULL,
    inputs_uri          TEXT COLLATE "C" NOT NULL DEFAULT '',
    user_inputs_uri     TEXT COLLATE "C" NOT NULL DEFAULT '',
    created_at          TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL,
    started_at          TIMESTAMPTZ
);
CREATE UNIQUE INDEX executions_key ON executions (project, domain, name);
-- ListExecutions: newest first in a project/domain, optionally by phase or launch entity.
CREATE INDEX executions_scope_created ON executions (project, domain, created_at, id);
CREATE INDEX executions_scope_phase ON executions (project, domain, phase, created_at);
CREATE INDEX executions_launch_plan ON executions (project, domain, launch_plan_name, created_at);
CREATE INDEX executions_workflow ON executions (project, domain, workflow_name, created_at);

CREATE TABLE node_executions (
    id                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project             TEXT COLLATE "C" NOT NULL,
    domain              TEXT COLLATE "C" NOT NULL,
    execution_name      TEXT COLLATE "C" NOT NULL,
    node_id             TEXT COLLATE "C" NOT NULL,
    parent_node_id      TEXT COLLATE "C",
    phase               TEXT COLLATE "C" NOT NULL,
    closure             BYTEA NOT NULL,
    metadata            BYTEA NOT NULL,
    input_uri           TEXT COLLATE "C" NOT NULL DEFAULT '',
    dynamic_workflow    BYTEA,
    created_at          TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL,
    started_at          TIMESTAMPTZ,
    FOREIGN KEY (project, domain, execution_name) REFERENCES executions (project, domain, name)
);
CREATE UNIQUE INDEX node_executions_key ON node_executions (project, domain, execution_name, node_id);
-- ListNodeExecutions: top level (parent NULL) or the children of one parent.
CREATE INDEX node_executions_parent ON node_executions (project, domain, execution_name, parent_node_id, created_at, id);

CREATE TABLE task_executions (
    id                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project             TEXT COLLATE "C" NOT NULL,
    domain              TEXT COLLATE "C" NOT NULL,
    execution_name      TEXT COLLATE "C" NOT NULL,
    node_id             TEXT COLLATE "C" NOT NULL,
    task_project        TEXT COLLATE "C" NOT NULL,
    task_domain         TEXT COLLATE "C" NOT NULL,
    task_name           TEXT COLLATE "C" NOT NULL,
    task_version        TEXT COLLATE "C" NOT NULL,
    retry_attempt       INTEGER NOT NULL,
    phase               TEXT COLLATE "C" NOT NULL,
    phase_version       INTEGER NOT NULL DEFAULT 0,
    closure             BYTEA NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL,
    started_at          TIMESTAMPTZ,
    FOREIGN KEY (project, domain, execution_name, node_id)
        REFERENCES node_executions (project, domain, execution_name, node_id)
);
-- The key; also ListTaskExecutions of one node (its prefix).
CREATE UNIQUE INDEX task_executions_key ON task_executions
    (project, domain, execution_name, node_id, task_project, task_domain, task_name, task_version, retry_attempt);

-- The engine's journal: the run request and execution-level state of every execution it has
-- not finished, and the state of each of their node instances.
CREATE TABLE engine_executions (
    project             TEXT COLLATE "C" NOT NULL,
    domain              TEXT COLLATE "C" NOT NULL,
    name                TEXT COLLATE "C" NOT NULL,
    request             BYTEA NOT NULL,
    workflow_state      BYTEA,
    pending_abort       TEXT COLLATE "C",
    PRIMARY KEY (project, domain, name),
    FOREIGN KEY (project, domain, name) REFERENCES executions (project, domain, name)
);

CREATE TABLE engine_node_state (
    project             TEXT COLLATE "C" NOT NULL,
    domain              TEXT COLLATE "C" NOT NULL,
    execution_name      TEXT COLLATE "C" NOT NULL,
    node_id             TEXT COLLATE "C" NOT NULL,
    state               BYTEA NOT NULL,
    PRIMARY KEY (project, domain, execution_name, node_id)
);
