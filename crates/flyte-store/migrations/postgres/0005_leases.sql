-- Execution leases, PostgreSQL. The same table and indexes as ../sqlite/0005_leases.sql
-- (which explains them); keep the two in step.

CREATE TABLE execution_leases (
    project    TEXT COLLATE "C" NOT NULL,
    domain     TEXT COLLATE "C" NOT NULL,
    name       TEXT COLLATE "C" NOT NULL,
    owner_id   TEXT COLLATE "C" NOT NULL,
    expires_at TIMESTAMPTZ      NOT NULL,
    PRIMARY KEY (project, domain, name)
);
CREATE INDEX execution_leases_expires ON execution_leases (expires_at);
CREATE INDEX execution_leases_owner ON execution_leases (owner_id);
