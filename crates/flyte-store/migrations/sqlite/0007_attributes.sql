-- Matchable attributes (flyteadmin `resources`): one admin.MatchingAttributes per scope and
-- resource type. The scope is (project, domain, workflow, launch_plan) with '' for "any"
-- (flyteadmin's convention): ('p','','','') project, ('p','d','','') project-domain,
-- ('p','d','wf','') workflow. `resource_type` is admin.MatchableResource; `attributes` the
-- encoded admin.MatchingAttributes.

CREATE TABLE matchable_attributes (
    project       TEXT    NOT NULL,
    domain        TEXT    NOT NULL,
    workflow      TEXT    NOT NULL,
    launch_plan   TEXT    NOT NULL,
    resource_type INTEGER NOT NULL,
    attributes    BLOB    NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    PRIMARY KEY (project, domain, workflow, launch_plan, resource_type)
);
-- ListMatchableAttributes (all scopes of one resource type).
CREATE INDEX matchable_attributes_type ON matchable_attributes (resource_type);
