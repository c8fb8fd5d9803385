-- Matchable attributes, PostgreSQL. The same table, columns and indexes as
-- ../sqlite/0007_attributes.sql; keep the two in step.

CREATE TABLE matchable_attributes (
    project       TEXT COLLATE "C" NOT NULL,
    domain        TEXT COLLATE "C" NOT NULL,
    workflow      TEXT COLLATE "C" NOT NULL,
    launch_plan   TEXT COLLATE "C" NOT NULL,
    resource_type INTEGER          NOT NULL,
    attributes    BYTEA            NOT NULL,
    created_at    TIMESTAMPTZ      NOT NULL,
    updated_at    TIMESTAMPTZ      NOT NULL,
    PRIMARY KEY (project, domain, workflow, launch_plan, resource_type)
);
-- ListMatchableAttributes (all scopes of one resource type).
CREATE INDEX matchable_attributes_type ON matchable_attributes (resource_type);
