-- The cache catalog, PostgreSQL. The same tables, columns and indexes as
-- ../sqlite/0004_cache.sql (which explains them); keep the two in step.

CREATE TABLE cache_datasets (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project    TEXT COLLATE "C"    NOT NULL,
    domain     TEXT COLLATE "C"    NOT NULL,
    name       TEXT COLLATE "C"    NOT NULL,
    version    TEXT COLLATE "C"    NOT NULL,
    uuid       TEXT COLLATE "C"    NOT NULL,
    metadata   BYTEA    NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX cache_datasets_key ON cache_datasets (project, domain, name, version);
CREATE INDEX cache_datasets_created ON cache_datasets (created_at, id);

CREATE TABLE cache_partition_keys (
    dataset_id BIGINT NOT NULL REFERENCES cache_datasets (id) ON DELETE CASCADE,
    position   INTEGER NOT NULL,
    name       TEXT COLLATE "C"    NOT NULL,
    PRIMARY KEY (dataset_id, position)
);

CREATE TABLE cache_artifacts (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dataset_id     BIGINT NOT NULL REFERENCES cache_datasets (id) ON DELETE CASCADE,
    artifact_id    TEXT COLLATE "C"    NOT NULL,
    metadata       BYTEA    NOT NULL,
    -- The producing execution (from the metadata), for eviction per execution.
    exec_project   TEXT COLLATE "C",
    exec_domain    TEXT COLLATE "C",
    exec_name      TEXT COLLATE "C",
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX cache_artifacts_key ON cache_artifacts (dataset_id, artifact_id);
CREATE INDEX cache_artifacts_created ON cache_artifacts (dataset_id, created_at, id);
CREATE INDEX cache_artifacts_execution ON cache_artifacts (exec_project, exec_domain, exec_name);

CREATE TABLE cache_artifact_data (
    artifact_id BIGINT  NOT NULL REFERENCES cache_artifacts (id) ON DELETE CASCADE,
    position    INTEGER NOT NULL,
    name        TEXT COLLATE "C"    NOT NULL,
    value       BYTEA    NOT NULL,
    PRIMARY KEY (artifact_id, position)
);

CREATE TABLE cache_partitions (
    artifact_id BIGINT  NOT NULL REFERENCES cache_artifacts (id) ON DELETE CASCADE,
    position    INTEGER NOT NULL,
    key         TEXT COLLATE "C"    NOT NULL,
    value       TEXT COLLATE "C"    NOT NULL,
    PRIMARY KEY (artifact_id, position)
);
CREATE INDEX cache_partitions_kv ON cache_partitions (key, value);

-- A tag names one artifact of its dataset; the cache key of a task's inputs is a tag.
CREATE TABLE cache_tags (
    dataset_id  BIGINT  NOT NULL REFERENCES cache_datasets (id) ON DELETE CASCADE,
    name        TEXT COLLATE "C"    NOT NULL,
    artifact_id BIGINT  NOT NULL REFERENCES cache_artifacts (id) ON DELETE CASCADE,
    created_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (dataset_id, name)
);
CREATE INDEX cache_tags_artifact ON cache_tags (artifact_id);

-- cache_serialize: one owner per (dataset, tag) until `expires_at`; the dataset need not exist.
CREATE TABLE cache_reservations (
    project    TEXT COLLATE "C"    NOT NULL,
    domain     TEXT COLLATE "C"    NOT NULL,
    name       TEXT COLLATE "C"    NOT NULL,
    version    TEXT COLLATE "C"    NOT NULL,
    tag        TEXT COLLATE "C"    NOT NULL,
    owner_id   TEXT COLLATE "C"    NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (project, domain, name, version, tag)
);
