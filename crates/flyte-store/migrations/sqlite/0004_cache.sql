-- The cache catalog (datacatalog's `datasets`, `artifacts`, `artifact_data`, `tags`,
-- `partitions`, `partition_keys`, `reservations`), shared by the DataCatalog service, the
-- CacheService and the engine's task cache (`flyte-cache`). Artifact data are encoded
-- core.Literals kept inline (datacatalog keeps them in the blob store); metadata columns are
-- encoded datacatalog.Metadata. No foreign key to projects: datacatalog has none.

CREATE TABLE cache_datasets (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    project    TEXT    NOT NULL,
    domain     TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    version    TEXT    NOT NULL,
    uuid       TEXT    NOT NULL,
    metadata   BLOB    NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX cache_datasets_key ON cache_datasets (project, domain, name, version);
CREATE INDEX cache_datasets_created ON cache_datasets (created_at, id);

CREATE TABLE cache_partition_keys (
    dataset_id INTEGER NOT NULL REFERENCES cache_datasets (id) ON DELETE CASCADE,
    position   INTEGER NOT NULL,
    name       TEXT    NOT NULL,
    PRIMARY KEY (dataset_id, position)
);

CREATE TABLE cache_artifacts (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    dataset_id     INTEGER NOT NULL REFERENCES cache_datasets (id) ON DELETE CASCADE,
    artifact_id    TEXT    NOT NULL,
    metadata       BLOB    NOT NULL,
    -- The producing execution (from the metadata), for eviction per execution.
    exec_project   TEXT,
    exec_domain    TEXT,
    exec_name      TEXT,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);
CREATE UNIQUE INDEX cache_artifacts_key ON cache_artifacts (dataset_id, artifact_id);
CREATE INDEX cache_artifacts_created ON cache_artifacts (dataset_id, created_at, id);
CREATE INDEX cache_artifacts_execution ON cache_artifacts (exec_project, exec_domain, exec_name);

CREATE TABLE cache_artifact_data (
    artifact_id INTEGER NOT NULL REFERENCES cache_artifacts (id) ON DELETE CASCADE,
    position    INTEGER NOT NULL,
    name        TEXT    NOT NULL,
    value       BLOB    NOT NULL,
    PRIMARY KEY (artifact_id, position)
);

CREATE TABLE cache_partitions (
    artifact_id INTEGER NOT NULL REFERENCES cache_artifacts (id) ON DELETE CASCADE,
    position    INTEGER NOT NULL,
    key         TEXT    NOT NULL,
    value       TEXT    NOT NULL,
    PRIMARY KEY (artifact_id, position)
);
CREATE INDEX cache_partitions_kv ON cache_partitions (key, value);

-- A tag names one artifact of its dataset; the cache key of a task's inputs is a tag.
CREATE TABLE cache_tags (
    dataset_id  INTEGER NOT NULL REFERENCES cache_datasets (id) ON DELETE CASCADE,
    name        TEXT    NOT NULL,
    artifact_id INTEGER NOT NULL REFERENCES cache_artifacts (id) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (dataset_id, name)
);
CREATE INDEX cache_tags_artifact ON cache_tags (artifact_id);

-- cache_serialize: one owner per (dataset, tag) until `expires_at`; the dataset need not exist.
CREATE TABLE cache_reservations (
    project    TEXT    NOT NULL,
    domain     TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    version    TEXT    NOT NULL,
    tag        TEXT    NOT NULL,
    owner_id   TEXT    NOT NULL,
    expires_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (project, domain, name, version, tag)
);
