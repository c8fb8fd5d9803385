-- What executions are listed by besides their columns so far (flyteadmin's filters): the
-- error code of a failed execution, its duration once it ended (milliseconds; 0 before), and
-- its tags (ExecutionSpec.tags, filtered as `admin_tag.name`).

ALTER TABLE executions ADD COLUMN error_code TEXT NOT NULL DEFAULT '';
ALTER TABLE executions ADD COLUMN duration_ms BIGINT NOT NULL DEFAULT 0;

CREATE TABLE execution_tags (
    project TEXT NOT NULL,
    domain  TEXT NOT NULL,
    name    TEXT NOT NULL,
    tag     TEXT NOT NULL,
    PRIMARY KEY (project, domain, name, tag)
);
CREATE INDEX execution_tags_tag ON execution_tags (project, domain, tag);
