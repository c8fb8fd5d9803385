-- Execution leases: with several engine replicas on one database, the replica running an
-- execution holds its lease until `expires_at` and renews it while it runs; an expired lease
-- (its holder died or lost the database) may be taken over by another replica. A finished
-- execution's lease is deleted. `expires_at` is microseconds since the epoch (as elsewhere).

CREATE TABLE execution_leases (
    project    TEXT    NOT NULL,
    domain     TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    owner_id   TEXT    NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (project, domain, name)
);
-- Takeover scans for expired leases; renewal updates one owner's.
CREATE INDEX execution_leases_expires ON execution_leases (expires_at);
CREATE INDEX execution_leases_owner ON execution_leases (owner_id);
