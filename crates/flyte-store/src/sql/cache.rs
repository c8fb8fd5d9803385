//! The cache catalog (datacatalog `gormimpl/{dataset,artifact,tag,reservation}.go`): datasets
//! with partition keys, artifacts with inline data and partitions, tags, reservations; plus the
//! task cache's one-transaction put and eviction by selector.
//!
//! Reads run on the pool; an artifact is read in four statements (row, data, partitions, tags)
//! whatever the page size, children fetched with `IN` lists.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::backend::{Backend, Col, DbErrorKind, Row, Stmt, Value, classify};
use super::list::{Paging, SqlBuilder};
use super::{Reader, SqlStore, corrupt, internal, text, ts};
use crate::{
    ArtifactDataRecord, ArtifactFilter, ArtifactRecord, ArtifactRef, ArtifactSelector, CatalogPage,
    DatasetFilter, DatasetKey, DatasetRecord, ExecutionKey, Page, PutOutcome, ReservationKey,
    ReservationRecord, Result, StoreError, TagInfo,
};

/// datacatalog's `MaxPageLimit`, used when a list asks for no limit.
const DEFAULT_LIMIT: u32 = 50;

const DATASET_SELECT: &str =
    "SELECT id, project, domain, name, version, uuid, metadata, created_at FROM cache_datasets";
const DATASET_COLS: &[Col] = &[
    Col::BigInt,
    Col::Text,
    Col::Text,
    Col::Text,
    Col::Text,
    Col::Text,
    Col::Bytes,
    Col::Timestamp,
];
const DATASET_KEY_WHERE: &str =
    " WHERE project = $1 AND domain = $2 AND name = $3 AND version = $4";

const ARTIFACT_SELECT: &str = "SELECT a.id, d.project, d.domain, d.name, d.version, a.artifact_id, a.metadata, \
     a.exec_project, a.exec_domain, a.exec_name, a.created_at, a.updated_at \
     FROM cache_artifacts a JOIN cache_datasets d ON d.id = a.dataset_id";
const ARTIFACT_COLS: &[Col] = &[
    Col::BigInt,
    Col::Text,
    Col::Text,
    Col::Text,
    Col::Text,
    Col::Text,
    Col::Bytes,
    Col::Text,
    Col::Text,
    Col::Text,
    Col::Timestamp,
    Col::Timestamp,
];

fn bigint(r: &mut Reader, what: &str) -> Result<i64> {
    match r.next() {
        Value::BigInt(v) => Ok(v),
        Value::Int(v) => Ok(i64::from(v)),
        other => Err(corrupt(what, &other)),
    }
}

fn dataset_args(key: &DatasetKey) -> Vec<Value> {
    vec![
        text(&key.project),
        text(&key.domain),
        text(&key.name),
        text(&key.version),
    ]
}

fn dataset_from_row(row: Row) -> Result<(i64, DatasetRecord)> {
    let mut r = Reader::new(row);
    let id = bigint(&mut r, "id")?;
    Ok((
        id,
        DatasetRecord {
            key: DatasetKey {
                project: r.text("project")?,
                domain: r.text("domain")?,
                name: r.text("name")?,
                version: r.text("version")?,
            },
            uuid: r.text("uuid")?,
            metadata: r.bytes("metadata")?,
            partition_keys: Vec::new(),
            created_at: r.timestamp("created_at")?,
        },
    ))
}

fn artifact_from_row(row: Row) -> Result<(i64, ArtifactRecord)> {
    let mut r = Reader::new(row);
    let id = bigint(&mut r, "id")?;
    let dataset = DatasetKey {
        project: r.text("project")?,
        domain: r.text("domain")?,
        name: r.text("name")?,
        version: r.text("version")?,
    };
    let artifact_id = r.text("artifact_id")?;
    let metadata = r.bytes("metadata")?;
    let exec = (
        r.opt_text("exec_project")?,
        r.opt_text("exec_domain")?,
        r.opt_text("exec_name")?,
    );
    let source_execution = match exec {
        (Some(project), Some(domain), Some(name)) => Some(ExecutionKey {
            project,
            domain,
            name,
        }),
        _ => None,
    };
    Ok((
        id,
        ArtifactRecord {
            dataset,
            artifact_id,
            data: Vec::new(),
            metadata,
            partitions: Vec::new(),
            source_execution,
            tags: Vec::new(),
            created_at: r.timestamp("created_at")?,
            updated_at: r.timestamp("updated_at")?,
        },
    ))
}

fn exec_args(source: &Option<ExecutionKey>) -> [Value; 3] {
    match source {
        Some(e) => [text(&e.project), text(&e.domain), text(&e.name)],
        None => [Value::Null, Value::Null, Value::Null],
    }
}

fn catalog_paging(page: &CatalogPage) -> Result<Paging> {
    let token = page.token.trim();
    let offset = if token.is_empty() {
        0
    } else {
        token
            .parse::<u64>()
            .ok()
            .filter(|o| *o <= i64::MAX as u64)
            .ok_or_else(|| {
                StoreError::InvalidArgument(format!("invalid pagination token {:?}", page.token))
            })?
    };
    let limit = if page.limit == 0 {
        DEFAULT_LIMIT
    } else {
        page.limit
    };
    Ok(Paging { offset, limit })
}

fn push_order(b: &mut SqlBuilder, created: &str, id: &str, page: &CatalogPage, paging: Paging) {
    let dir = if page.ascending { " ASC" } else { " DESC" };
    b.push(" ORDER BY ")
        .push(created)
        .push(dir)
        .push(", ")
        .push(id)
        .push(dir)
        .push(" LIMIT ")
        .bind(Value::BigInt(i64::from(paging.limit) + 1))
        .push(" OFFSET ")
        .bind(Value::BigInt(paging.offset as i64));
}

fn push_in(b: &mut SqlBuilder, column: &str, ids: &[i64]) {
    b.push(column).push(" IN (");
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            b.push(", ");
        }
        b.bind(Value::BigInt(*id));
    }
    b.push(")");
}

/// Appends ` AND …` for every field of the selector.
fn push_selector(b: &mut SqlBuilder, s: &ArtifactSelector) {
    if let Some(p) = &s.project {
        b.push(" AND d.project = ").bind(text(p));
    }
    if let Some(d) = &s.domain {
        b.push(" AND d.domain = ").bind(text(d));
    }
    if let Some(n) = &s.dataset_name {
        b.push(" AND d.name = ").bind(text(n));
    }
    if let Some(versions) = &s.dataset_versions {
        if versions.is_empty() {
            b.push(" AND 1 = 0");
        } else {
            b.push(" AND d.version IN (");
            for (i, v) in versions.iter().enumerate() {
                if i > 0 {
                    b.push(", ");
                }
                b.bind(text(v));
            }
            b.push(")");
        }
    }
    if let Some(e) = &s.source_execution {
        b.push(" AND a.exec_project = ")
            .bind(text(&e.project))
            .push(" AND a.exec_domain = ")
            .bind(text(&e.domain))
            .push(" AND a.exec_name = ")
            .bind(text(&e.name));
    }
    if let Some(tag) = &s.tag {
        b.push(" AND EXISTS (SELECT 1 FROM cache_tags t WHERE t.artifact_id = a.id AND t.name = ")
            .bind(text(tag))
            .push(")");
    }
}

fn empty_selector() -> StoreError {
    StoreError::InvalidArgument(
        "select cached artifacts by at least one of project, domain, dataset name, dataset versions, source execution, tag"
            .into(),
    )
}

impl<B: Backend> SqlStore<B> {
    // --- reads ---------------------------------------------------------------------------

    async fn dataset_id(&self, key: &DatasetKey) -> Result<Option<i64>> {
        let stmt = Stmt {
            sql: format!("SELECT id FROM cache_datasets{DATASET_KEY_WHERE}").into(),
            args: dataset_args(key),
        };
        let row = self
            .backend
            .fetch(stmt, &[Col::BigInt])
            .await
            .map_err(internal)?
            .pop();
        match row {
            Some(row) => Ok(Some(bigint(&mut Reader::new(row), "id")?)),
            None => Ok(None),
        }
    }

    async fn tx_dataset_id(tx: &mut B::Tx, key: &DatasetKey) -> Result<i64> {
        let stmt = Stmt {
            sql: format!("SELECT id FROM cache_datasets{DATASET_KEY_WHERE}").into(),
            args: dataset_args(key),
        };
        match B::tx_fetch(tx, stmt, &[Col::BigInt])
            .await
            .map_err(internal)?
            .pop()
        {
            Some(row) => bigint(&mut Reader::new(row), "id"),
            None => Err(StoreError::NotFound(key.to_string())),
        }
    }

    /// Fills in the partition keys of datasets read by id.
    async fn with_partition_keys(
        &self,
        datasets: Vec<(i64, DatasetRecord)>,
    ) -> Result<Vec<DatasetRecord>> {
        if datasets.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = datasets.iter().map(|(id, _)| *id).collect();
        let mut b = SqlBuilder::new("SELECT dataset_id, name FROM cache_partition_keys WHERE ");
        push_in(&mut b, "dataset_id", &ids);
        b.push(" ORDER BY dataset_id, position");
        let rows = self
            .backend
            .fetch(b.build(), &[Col::BigInt, Col::Text])
            .await
            .map_err(internal)?;
        let mut keys: HashMap<i64, Vec<String>> = HashMap::new();
        for row in rows {
            let mut r = Reader::new(row);
            let id = bigint(&mut r, "dataset_id")?;
            keys.entry(id).or_default().push(r.text("name")?);
        }
        Ok(datasets
            .into_iter()
            .map(|(id, mut d)| {
                d.partition_keys = keys.remove(&id).unwrap_or_default();
                d
            })
            .collect())
    }

    /// Fills in data, partitions and tags of artifacts read by id (three statements).
    async fn with_children(
        &self,
        artifacts: Vec<(i64, ArtifactRecord)>,
    ) -> Result<Vec<ArtifactRecord>> {
        if artifacts.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = artifacts.iter().map(|(id, _)| *id).collect();
        let mut index: HashMap<i64, usize> = HashMap::with_capacity(ids.len());
        for (i, id) in ids.iter().enumerate() {
            index.insert(*id, i);
        }
        let mut out: Vec<ArtifactRecord> = artifacts.into_iter().map(|(_, a)| a).collect();

        let mut b =
            SqlBuilder::new("SELECT artifact_id, name, value FROM cache_artifact_data WHERE ");
        push_in(&mut b, "artifact_id", &ids);
        b.push(" ORDER BY artifact_id, position");
        for row in self
            .backend
            .fetch(b.build(), &[Col::BigInt, Col::Text, Col::Bytes])
            .await
            .map_err(internal)?
        {
            let mut r = Reader::new(row);
            let id = bigint(&mut r, "artifact_id")?;
            let data = ArtifactDataRecord {
                name: r.text("name")?,
                value: r.bytes("value")?,
            };
            if let Some(&i) = index.get(&id) {
                out[i].data.push(data);
            }
        }

        let mut b = SqlBuilder::new("SELECT artifact_id, key, value FROM cache_partitions WHERE ");
        push_in(&mut b, "artifact_id", &ids);
        b.push(" ORDER BY artifact_id, position");
        for row in self
            .backend
            .fetch(b.build(), &[Col::BigInt, Col::Text, Col::Text])
            .await
            .map_err(internal)?
        {
            let mut r = Reader::new(row);
            let id = bigint(&mut r, "artifact_id")?;
            let kv = (r.text("key")?, r.text("value")?);
            if let Some(&i) = index.get(&id) {
                out[i].partitions.push(kv);
            }
        }

        let mut b = SqlBuilder::new("SELECT artifact_id, name, created_at FROM cache_tags WHERE ");
        push_in(&mut b, "artifact_id", &ids);
        b.push(" ORDER BY artifact_id, created_at, name");
        for row in self
            .backend
            .fetch(b.build(), &[Col::BigInt, Col::Text, Col::Timestamp])
            .await
            .map_err(internal)?
        {
            let mut r = Reader::new(row);
            let id = bigint(&mut r, "artifact_id")?;
            let tag = TagInfo {
                name: r.text("name")?,
                created_at: r.timestamp("created_at")?,
            };
            if let Some(&i) = index.get(&id) {
                out[i].tags.push(tag);
            }
        }
        Ok(out)
    }

    pub(super) async fn get_dataset_impl(&self, key: &DatasetKey) -> Result<DatasetRecord> {
        let stmt = Stmt {
            sql: format!("{DATASET_SELECT}{DATASET_KEY_WHERE}").into(),
            args: dataset_args(key),
        };
        let row = self
            .backend
            .fetch(stmt, DATASET_COLS)
            .await
            .map_err(internal)?
            .pop()
            .ok_or_else(|| StoreError::NotFound(key.to_string()))?;
        let dataset = dataset_from_row(row)?;
        self.with_partition_keys(vec![dataset])
            .await?
            .pop()
            .ok_or_else(|| StoreError::NotFound(key.to_string()))
    }

    pub(super) async fn list_datasets_impl(
        &self,
        filter: &DatasetFilter,
        page: &CatalogPage,
    ) -> Result<Page<DatasetRecord>> {
        let paging = catalog_paging(page)?;
        let mut b = SqlBuilder::new(DATASET_SELECT);
        b.push(" WHERE 1 = 1");
        for (column, value) in [
            ("project", &filter.project),
            ("domain", &filter.domain),
            ("name", &filter.name),
            ("version", &filter.version),
        ] {
            if let Some(v) = value {
                b.push(" AND ").push(column).push(" = ").bind(text(v));
            }
        }
        push_order(&mut b, "created_at", "id", page, paging);
        let rows = self
            .backend
            .fetch(b.build(), DATASET_COLS)
            .await
            .map_err(internal)?;
        let (rows, next_token) = paging.page(rows);
        let datasets = rows
            .into_iter()
            .map(dataset_from_row)
            .collect::<Result<Vec<_>>>()?;
        Ok(Page {
            items: self.with_partition_keys(datasets).await?,
            next_token,
        })
    }

    pub(super) async fn get_artifact_impl(
        &self,
        dataset: &DatasetKey,
        by: &ArtifactRef,
    ) -> Result<ArtifactRecord> {
        let mut args = dataset_args(dataset);
        let sql = match by {
            ArtifactRef::Id(id) => {
                args.push(text(id));
                format!(
                    "{ARTIFACT_SELECT} WHERE d.project = $1 AND d.domain = $2 AND d.name = $3 \
                     AND d.version = $4 AND a.artifact_id = $5"
                )
            }
            ArtifactRef::Tag(tag) => {
                args.push(text(tag));
                format!(
                    "{ARTIFACT_SELECT} JOIN cache_tags t ON t.artifact_id = a.id \
                     WHERE d.project = $1 AND d.domain = $2 AND d.name = $3 AND d.version = $4 \
                     AND t.name = $5"
                )
            }
        };
        let row = self
            .backend
            .fetch(
                Stmt {
                    sql: sql.into(),
                    args,
                },
                ARTIFACT_COLS,
            )
            .await
            .map_err(internal)?
            .pop();
        let Some(row) = row else {
            // Name what is missing: the dataset, or the artifact in it.
            return Err(match self.dataset_id(dataset).await? {
                None => StoreError::NotFound(dataset.to_string()),
                Some(_) => StoreError::NotFound(format!("{by} in {dataset}")),
            });
        };
        let artifact = artifact_from_row(row)?;
        self.with_children(vec![artifact])
            .await?
            .pop()
            .ok_or_else(|| StoreError::NotFound(format!("{by} in {dataset}")))
    }

    pub(super) async fn lookup_cached_artifact_impl(
        &self,
        dataset: &DatasetKey,
        tag: &str,
    ) -> Result<Option<ArtifactRecord>> {
        let mut args = dataset_args(dataset);
        args.push(text(tag));
        let stmt = Stmt::new(
            "SELECT a.artifact_id, a.metadata, a.exec_project, a.exec_domain, a.exec_name, \
             a.created_at, a.updated_at, t.created_at, x.name, x.value \
             FROM cache_datasets d JOIN cache_tags t ON t.dataset_id = d.id \
             JOIN cache_artifacts a ON a.id = t.artifact_id \
             LEFT JOIN cache_artifact_data x ON x.artifact_id = a.id \
             WHERE d.project = $1 AND d.domain = $2 AND d.name = $3 AND d.version = $4 AND t.name = $5 \
             ORDER BY x.position",
            args,
        );
        let rows = self
            .backend
            .fetch(
                stmt,
                &[
                    Col::Text,
                    Col::Bytes,
                    Col::Text,
                    Col::Text,
                    Col::Text,
                    Col::Timestamp,
                    Col::Timestamp,
                    Col::Timestamp,
                    Col::Text,
                    Col::Bytes,
                ],
            )
            .await
            .map_err(internal)?;
        let mut artifact: Option<ArtifactRecord> = None;
        for row in rows {
            let mut r = Reader::new(row);
            let artifact_id = r.text("artifact_id")?;
            let metadata = r.bytes("metadata")?;
            let exec = (
                r.opt_text("exec_project")?,
                r.opt_text("exec_domain")?,
                r.opt_text("exec_name")?,
            );
            let created_at = r.timestamp("created_at")?;
            let updated_at = r.timestamp("updated_at")?;
            let tag_created_at = r.timestamp("tag created_at")?;
            let a = artifact.get_or_insert_with(|| ArtifactRecord {
                dataset: dataset.clone(),
                artifact_id,
                data: Vec::new(),
                metadata,
                partitions: Vec::new(),
                source_execution: match exec {
                    (Some(project), Some(domain), Some(name)) => Some(ExecutionKey {
                        project,
                        domain,
                        name,
                    }),
                    _ => None,
                },
                tags: vec![TagInfo {
                    name: tag.to_string(),
                    created_at: tag_created_at,
                }],
                created_at,
                updated_at,
            });
            // LEFT JOIN: an artifact without data has one row with NULL name and value.
            if let (Some(name), Some(value)) = (r.opt_text("name")?, r.opt_bytes("value")?) {
                a.data.push(ArtifactDataRecord { name, value });
            }
        }
        Ok(artifact)
    }

    pub(super) async fn list_artifacts_impl(
        &self,
        dataset: &DatasetKey,
        filter: &ArtifactFilter,
        page: &CatalogPage,
    ) -> Result<Page<ArtifactRecord>> {
        let paging = catalog_paging(page)?;
        let dataset_id = self
            .dataset_id(dataset)
            .await?
            .ok_or_else(|| StoreError::NotFound(dataset.to_string()))?;
        let mut b = SqlBuilder::new(ARTIFACT_SELECT);
        b.push(" WHERE a.dataset_id = ")
            .bind(Value::BigInt(dataset_id));
        if let Some(tag) = &filter.tag {
            b.push(
                " AND EXISTS (SELECT 1 FROM cache_tags t WHERE t.artifact_id = a.id AND t.name = ",
            )
            .bind(text(tag))
            .push(")");
        }
        for (key, value) in &filter.partitions {
            b.push(" AND EXISTS (SELECT 1 FROM cache_partitions p WHERE p.artifact_id = a.id AND p.key = ")
                .bind(text(key))
                .push(" AND p.value = ")
                .bind(text(value))
                .push(")");
        }
        push_order(&mut b, "a.created_at", "a.id", page, paging);
        self.artifact_page(b, paging).await
    }

    async fn artifact_page(&self, b: SqlBuilder, paging: Paging) -> Result<Page<ArtifactRecord>> {
        let rows = self
            .backend
            .fetch(b.build(), ARTIFACT_COLS)
            .await
            .map_err(internal)?;
        let (rows, next_token) = paging.page(rows);
        let artifacts = rows
            .into_iter()
            .map(artifact_from_row)
            .collect::<Result<Vec<_>>>()?;
        Ok(Page {
            items: self.with_children(artifacts).await?,
            next_token,
        })
    }

    pub(super) async fn list_cached_artifacts_impl(
        &self,
        selector: &ArtifactSelector,
        page: &CatalogPage,
    ) -> Result<Page<ArtifactRecord>> {
        if selector.is_empty() {
            return Err(empty_selector());
        }
        let paging = catalog_paging(page)?;
        let mut b = SqlBuilder::new(ARTIFACT_SELECT);
        b.push(" WHERE 1 = 1");
        push_selector(&mut b, selector);
        push_order(&mut b, "a.created_at", "a.id", page, paging);
        self.artifact_page(b, paging).await
    }

    // --- writes --------------------------------------------------------------------------

    /// Inserts a dataset (`DO NOTHING` on its key when `if_absent`) and its partition keys;
    /// the dataset's id.
    async fn tx_insert_dataset(
        tx: &mut B::Tx,
        dataset: &DatasetRecord,
        if_absent: bool,
    ) -> Result<i64> {
        let mut args = dataset_args(&dataset.key);
        args.extend([
            text(&dataset.uuid),
            Value::Bytes(dataset.metadata.clone()),
            ts(dataset.created_at),
        ]);
        let sql = if if_absent {
            "INSERT INTO cache_datasets (project, domain, name, version, uuid, metadata, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (project, domain, name, version) DO NOTHING RETURNING id"
        } else {
            "INSERT INTO cache_datasets (project, domain, name, version, uuid, metadata, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id"
        };
        let inserted = B::tx_fetch(tx, Stmt::new(sql, args), &[Col::BigInt])
            .await
            .map_err(|err| match classify(&err) {
                DbErrorKind::UniqueViolation => StoreError::AlreadyExists(dataset.key.to_string()),
                _ => internal(err),
            })?
            .pop();
        let id = match inserted {
            Some(row) => bigint(&mut Reader::new(row), "id")?,
            // Only with `if_absent`: it exists, keep it as it is.
            None => return Self::tx_dataset_id(tx, &dataset.key).await,
        };
        Self::tx_insert_each(
            tx,
            "INSERT INTO cache_partition_keys (dataset_id, position, name) VALUES ($1, $2, $3)",
            dataset
                .partition_keys
                .iter()
                .enumerate()
                .map(|(position, name)| {
                    vec![Value::BigInt(id), Value::Int(position as i32), text(name)]
                }),
        )
        .await?;
        Ok(id)
    }

    /// Runs the INSERT `sql` once for each row of arguments.
    async fn tx_insert_each(
        tx: &mut B::Tx,
        sql: &'static str,
        rows: impl Iterator<Item = Vec<Value>>,
    ) -> Result<()> {
        for args in rows {
            B::tx_execute(tx, Stmt::new(sql, args))
                .await
                .map_err(internal)?;
        }
        Ok(())
    }

    async fn tx_insert_data(
        tx: &mut B::Tx,
        artifact: i64,
        data: &[ArtifactDataRecord],
    ) -> Result<()> {
        Self::tx_insert_each(
            tx,
            "INSERT INTO cache_artifact_data (artifact_id, position, name, value) VALUES ($1, $2, $3, $4)",
            data.iter().enumerate().map(|(position, d)| {
                vec![
                    Value::BigInt(artifact),
                    Value::Int(position as i32),
                    text(&d.name),
                    Value::Bytes(d.value.clone()),
                ]
            }),
        )
        .await
    }

    /// Inserts an artifact of dataset `dataset_id` with data and partitions; its id.
    async fn tx_insert_artifact(
        tx: &mut B::Tx,
        dataset_id: i64,
        artifact: &ArtifactRecord,
    ) -> Result<i64> {
        let [p, d, n] = exec_args(&artifact.source_execution);
        let row = B::tx_fetch(
            tx,
            Stmt::new(
                "INSERT INTO cache_artifacts (dataset_id, artifact_id, metadata, exec_project, exec_domain, \
                 exec_name, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
                vec![
                    Value::BigInt(dataset_id),
                    text(&artifact.artifact_id),
                    Value::Bytes(artifact.metadata.clone()),
                    p,
                    d,
                    n,
                    ts(artifact.created_at),
                    ts(artifact.updated_at),
                ],
            ),
            &[Col::BigInt],
        )
        .await
        .map_err(|err| match classify(&err) {
            DbErrorKind::UniqueViolation => StoreError::AlreadyExists(format!(
                "artifact {} in {}",
                artifact.artifact_id, artifact.dataset
            )),
            _ => internal(err),
        })?
        .pop()
        .ok_or_else(|| StoreError::Internal("INSERT … RETURNING returned no row".into()))?;
        let id = bigint(&mut Reader::new(row), "id")?;
        Self::tx_insert_data(tx, id, &artifact.data).await?;
        Self::tx_insert_each(
            tx,
            "INSERT INTO cache_partitions (artifact_id, position, key, value) VALUES ($1, $2, $3, $4)",
            artifact.partitions.iter().enumerate().map(|(position, (key, value))| {
                vec![
                    Value::BigInt(id),
                    Value::Int(position as i32),
                    text(key),
                    text(value),
                ]
            }),
        )
        .await?;
        Ok(id)
    }

    /// Replaces data, metadata and (if given) source execution of artifact `id`.
    async fn tx_replace_artifact(
        tx: &mut B::Tx,
        id: i64,
        data: &[ArtifactDataRecord],
        metadata: Vec<u8>,
        source: Option<&Option<ExecutionKey>>,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let stmt = match source {
            Some(source) => {
                let [p, d, n] = exec_args(source);
                Stmt::new(
                    "UPDATE cache_artifacts SET metadata = $2, updated_at = $3, exec_project = $4, \
                     exec_domain = $5, exec_name = $6 WHERE id = $1",
                    vec![Value::BigInt(id), Value::Bytes(metadata), ts(at), p, d, n],
                )
            }
            None => Stmt::new(
                "UPDATE cache_artifacts SET metadata = $2, updated_at = $3 WHERE id = $1",
                vec![Value::BigInt(id), Value::Bytes(metadata), ts(at)],
            ),
        };
        B::tx_execute(tx, stmt).await.map_err(internal)?;
        B::tx_execute(
            tx,
            Stmt::new(
                "DELETE FROM cache_artifact_data WHERE artifact_id = $1",
                vec![Value::BigInt(id)],
            ),
        )
        .await
        .map_err(internal)?;
        Self::tx_insert_data(tx, id, data).await
    }

    /// The id and artifact id of the artifact `by` names in dataset `dataset_id`, locked.
    async fn tx_find_artifact(
        tx: &mut B::Tx,
        dataset_id: i64,
        by: &ArtifactRef,
    ) -> Result<Option<(i64, String)>> {
        let (sql, arg) = match by {
            ArtifactRef::Id(id) => (
                format!(
                    "SELECT id, artifact_id FROM cache_artifacts WHERE dataset_id = $1 AND artifact_id = $2{}",
                    B::LOCK_ROWS
                ),
                id,
            ),
            ArtifactRef::Tag(tag) => (
                format!(
                    "SELECT a.id, a.artifact_id FROM cache_tags t JOIN cache_artifacts a ON a.id = t.artifact_id \
                     WHERE t.dataset_id = $1 AND t.name = $2{}",
                    B::LOCK_ROWS
                ),
                tag,
            ),
        };
        let row = B::tx_fetch(
            tx,
            Stmt {
                sql: sql.into(),
                args: vec![Value::BigInt(dataset_id), text(arg)],
            },
            &[Col::BigInt, Col::Text],
        )
        .await
        .map_err(internal)?
        .pop();
        match row {
            Some(row) => {
                let mut r = Reader::new(row);
                Ok(Some((bigint(&mut r, "id")?, r.text("artifact_id")?)))
            }
            None => Ok(None),
        }
    }

    pub(super) async fn create_dataset_impl(&self, dataset: DatasetRecord) -> Result<()> {
        let mut tx = self.begin().await?;
        Self::tx_insert_dataset(&mut tx, &dataset, false).await?;
        B::commit(tx).await.map_err(internal)
    }

    pub(super) async fn create_artifact_impl(&self, artifact: ArtifactRecord) -> Result<()> {
        let mut tx = self.begin().await?;
        let dataset_id = Self::tx_dataset_id(&mut tx, &artifact.dataset).await?;
        Self::tx_insert_artifact(&mut tx, dataset_id, &artifact).await?;
        B::commit(tx).await.map_err(internal)
    }

    pub(super) async fn add_tag_impl(
        &self,
        dataset: &DatasetKey,
        tag: &str,
        artifact_id: &str,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        let dataset_id = Self::tx_dataset_id(&mut tx, dataset).await?;
        let (id, _) =
            Self::tx_find_artifact(&mut tx, dataset_id, &ArtifactRef::Id(artifact_id.into()))
                .await?
                .ok_or_else(|| {
                    StoreError::NotFound(format!("artifact {artifact_id} in {dataset}"))
                })?;
        B::tx_execute(
            &mut tx,
            Stmt::new(
                "INSERT INTO cache_tags (dataset_id, name, artifact_id, created_at) VALUES ($1, $2, $3, $4)",
                vec![Value::BigInt(dataset_id), text(tag), Value::BigInt(id), ts(at)],
            ),
        )
        .await
        .map_err(|err| match classify(&err) {
            DbErrorKind::UniqueViolation => {
                StoreError::AlreadyExists(format!("tag {tag} in {dataset}"))
            }
            _ => internal(err),
        })?;
        B::commit(tx).await.map_err(internal)
    }

    pub(super) async fn update_artifact_impl(
        &self,
        dataset: &DatasetKey,
        by: &ArtifactRef,
        data: Vec<ArtifactDataRecord>,
        metadata: Vec<u8>,
        at: DateTime<Utc>,
    ) -> Result<ArtifactRecord> {
        let mut tx = self.begin().await?;
        let dataset_id = Self::tx_dataset_id(&mut tx, dataset).await?;
        let (id, artifact_id) = Self::tx_find_artifact(&mut tx, dataset_id, by)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("{by} in {dataset}")))?;
        Self::tx_replace_artifact(&mut tx, id, &data, metadata, None, at).await?;
        B::commit(tx).await.map_err(internal)?;
        self.get_artifact_impl(dataset, &ArtifactRef::Id(artifact_id))
            .await
    }

    pub(super) async fn put_cached_artifact_impl(
        &self,
        dataset: DatasetRecord,
        artifact: ArtifactRecord,
        tag: &str,
        overwrite: bool,
    ) -> Result<PutOutcome> {
        // A concurrent put of the same tag can take it between our check and our insert
        // (PostgreSQL; SQLite write transactions are serial): then start over, and find it.
        for _ in 0..3 {
            if let Some(outcome) = self
                .try_put_cached(&dataset, &artifact, tag, overwrite)
                .await?
            {
                let (artifact_id, make): (String, fn(ArtifactRecord) -> PutOutcome) = outcome;
                let stored = self
                    .get_artifact_impl(&dataset.key, &ArtifactRef::Id(artifact_id))
                    .await?;
                return Ok(make(stored));
            }
        }
        Err(StoreError::Internal(
            format!("tag {tag} in {} kept changing under a put", dataset.key).into(),
        ))
    }

    /// One attempt; `None` if the tag was taken concurrently (nothing committed).
    #[allow(clippy::type_complexity)]
    async fn try_put_cached(
        &self,
        dataset: &DatasetRecord,
        artifact: &ArtifactRecord,
        tag: &str,
        overwrite: bool,
    ) -> Result<Option<(String, fn(ArtifactRecord) -> PutOutcome)>> {
        let mut tx = self.begin().await?;
        let dataset_id = Self::tx_insert_dataset(&mut tx, dataset, true).await?;
        let existing =
            Self::tx_find_artifact(&mut tx, dataset_id, &ArtifactRef::Tag(tag.into())).await?;
        let result: (String, fn(ArtifactRecord) -> PutOutcome) = match existing {
            Some((id, artifact_id)) if overwrite => {
                Self::tx_replace_artifact(
                    &mut tx,
                    id,
                    &artifact.data,
                    artifact.metadata.clone(),
                    Some(&artifact.source_execution),
                    artifact.updated_at,
                )
                .await?;
                (artifact_id, PutOutcome::Replaced)
            }
            Some((_, artifact_id)) => return Ok(Some((artifact_id, PutOutcome::Kept))),
            None => {
                let id = Self::tx_insert_artifact(&mut tx, dataset_id, artifact).await?;
                let n = B::tx_execute(
                    &mut tx,
                    Stmt::new(
                        "INSERT INTO cache_tags (dataset_id, name, artifact_id, created_at) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (dataset_id, name) DO NOTHING",
                        vec![
                            Value::BigInt(dataset_id),
                            text(tag),
                            Value::BigInt(id),
                            ts(artifact.created_at),
                        ],
                    ),
                )
                .await
                .map_err(internal)?;
                if n == 0 {
                    return Ok(None);
                }
                (artifact.artifact_id.clone(), PutOutcome::Created)
            }
        };
        B::commit(tx).await.map_err(internal)?;
        Ok(Some(result))
    }

    pub(super) async fn delete_artifacts_impl(&self, selector: &ArtifactSelector) -> Result<u64> {
        if selector.is_empty() {
            return Err(empty_selector());
        }
        let mut b = SqlBuilder::new(
            "DELETE FROM cache_artifacts WHERE id IN (SELECT a.id FROM cache_artifacts a \
             JOIN cache_datasets d ON d.id = a.dataset_id WHERE 1 = 1",
        );
        push_selector(&mut b, selector);
        b.push(")");
        let mut tx = self.begin().await?;
        let n = B::tx_execute(&mut tx, b.build()).await.map_err(internal)?;
        B::commit(tx).await.map_err(internal)?;
        Ok(n)
    }

    pub(super) async fn get_or_extend_reservation_impl(
        &self,
        key: &ReservationKey,
        owner_id: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<ReservationRecord> {
        let mut args = dataset_args(&key.dataset);
        args.extend([text(&key.tag), text(owner_id), ts(expires_at), ts(now)]);
        // Take it if free, expired or ours (datacatalog `reservation_repo.go`: Create, else
        // Update WHERE expires_at <= now OR owner_id = owner); otherwise leave it.
        let upsert = Stmt::new(
            "INSERT INTO cache_reservations (project, domain, name, version, tag, owner_id, expires_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) \
             ON CONFLICT (project, domain, name, version, tag) DO UPDATE \
             SET owner_id = excluded.owner_id, expires_at = excluded.expires_at, updated_at = excluded.updated_at \
             WHERE cache_reservations.expires_at <= excluded.updated_at OR cache_reservations.owner_id = excluded.owner_id",
            args,
        );
        let mut key_args = dataset_args(&key.dataset);
        key_args.push(text(&key.tag));
        let select = Stmt::new(
            "SELECT owner_id, expires_at FROM cache_reservations \
             WHERE project = $1 AND domain = $2 AND name = $3 AND version = $4 AND tag = $5",
            key_args,
        );
        let mut tx = self.begin().await?;
        B::tx_execute(&mut tx, upsert).await.map_err(internal)?;
        let row = B::tx_fetch(&mut tx, select, &[Col::Text, Col::Timestamp])
            .await
            .map_err(internal)?
            .pop()
            .ok_or_else(|| StoreError::Internal(format!("{key} vanished after upsert").into()))?;
        B::commit(tx).await.map_err(internal)?;
        let mut r = Reader::new(row);
        Ok(ReservationRecord {
            key: key.clone(),
            owner_id: r.text("owner_id")?,
            expires_at: r.timestamp("expires_at")?,
        })
    }

    pub(super) async fn release_reservation_impl(
        &self,
        key: &ReservationKey,
        owner_id: &str,
    ) -> Result<()> {
        let mut args = dataset_args(&key.dataset);
        args.extend([text(&key.tag), text(owner_id)]);
        let mut tx = self.begin().await?;
        let n = B::tx_execute(
            &mut tx,
            Stmt::new(
                "DELETE FROM cache_reservations WHERE project = $1 AND domain = $2 AND name = $3 \
                 AND version = $4 AND tag = $5 AND owner_id = $6",
                args,
            ),
        )
        .await
        .map_err(internal)?;
        B::commit(tx).await.map_err(internal)?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("{key} held by {owner_id}")));
        }
        Ok(())
    }
}
