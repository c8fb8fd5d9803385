//! Matchable attributes (flyteadmin `gormimpl/resource_repo.go`): create-or-replace by scope,
//! exact get and delete, the most specific match for a scope, and every scope of one type.

use super::backend::{Backend, Col, Row, Stmt, Value};
use super::{Reader, SqlStore, internal, text, ts};
use crate::{AttributesKey, AttributesRecord, Result, StoreError};

const SELECT: &str = "SELECT project, domain, workflow, launch_plan, resource_type, attributes, \
     created_at, updated_at FROM matchable_attributes";
const COLS: &[Col] = &[
    Col::Text,
    Col::Text,
    Col::Text,
    Col::Text,
    Col::Int,
    Col::Bytes,
    Col::Timestamp,
    Col::Timestamp,
];
const KEY_WHERE: &str = " WHERE project = $1 AND domain = $2 AND workflow = $3 AND launch_plan = $4 \
     AND resource_type = $5";
/// Most specific first: launch plan, then workflow, then domain, then project level
/// (flyteadmin's `priority desc`). Booleans sort false < true on both backends.
const MOST_SPECIFIC_FIRST: &str = " ORDER BY (launch_plan <> '') DESC, (workflow <> '') DESC, \
     (domain <> '') DESC, (project <> '') DESC";

fn key_args(key: &AttributesKey) -> Vec<Value> {
    vec![
        text(&key.project),
        text(&key.domain),
        text(&key.workflow),
        text(&key.launch_plan),
        Value::Int(key.resource_type),
    ]
}

fn from_row(row: Row) -> Result<AttributesRecord> {
    let mut r = Reader::new(row);
    Ok(AttributesRecord {
        key: AttributesKey {
            project: r.text("project")?,
            domain: r.text("domain")?,
            workflow: r.text("workflow")?,
            launch_plan: r.text("launch_plan")?,
            resource_type: r.int("resource_type")?,
        },
        attributes: r.bytes("attributes")?,
        created_at: r.timestamp("created_at")?,
        updated_at: r.timestamp("updated_at")?,
    })
}

/// flyteadmin's rule for a scope: a project needs a domain or stands alone, a workflow needs a
/// project, a launch plan a workflow.
fn check_scope(key: &AttributesKey) -> Result<()> {
    let any = |s: &str| s.is_empty();
    let ok = !(any(&key.project) && any(&key.domain))
        && (!any(&key.project) || (any(&key.workflow) && any(&key.launch_plan)))
        && (!any(&key.workflow) || any(&key.launch_plan));
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidArgument(format!(
            "invalid scope for {key}: a workflow needs a project, a launch plan a workflow"
        )))
    }
}

impl<B: Backend> SqlStore<B> {
    pub(super) async fn put_attributes_impl(
        &self,
        record: AttributesRecord,
    ) -> Result<AttributesRecord> {
        check_scope(&record.key)?;
        let key = record.key.clone();
        let mut args = key_args(&key);
        args.extend([
            Value::Bytes(record.attributes),
            ts(record.created_at),
            ts(record.updated_at),
        ]);
        // An existing row keeps its created_at.
        let upsert = Stmt::new(
            "INSERT INTO matchable_attributes (project, domain, workflow, launch_plan, resource_type, \
             attributes, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (project, domain, workflow, launch_plan, resource_type) \
             DO UPDATE SET attributes = excluded.attributes, updated_at = excluded.updated_at",
            args,
        );
        let mut tx = self.begin().await?;
        B::tx_execute(&mut tx, upsert).await.map_err(internal)?;
        let row = B::tx_fetch(
            &mut tx,
            Stmt {
                sql: format!("{SELECT}{KEY_WHERE}").into(),
                args: key_args(&key),
            },
            COLS,
        )
        .await
        .map_err(internal)?
        .pop()
        .ok_or_else(|| StoreError::Internal(format!("{key} vanished after upsert").into()))?;
        B::commit(tx).await.map_err(internal)?;
        from_row(row)
    }

    pub(super) async fn get_attributes_impl(
        &self,
        key: &AttributesKey,
    ) -> Result<AttributesRecord> {
        let stmt = Stmt {
            sql: format!("{SELECT}{KEY_WHERE}").into(),
            args: key_args(key),
        };
        from_row(self.fetch_one(stmt, COLS, || key.to_string()).await?)
    }

    pub(super) async fn resolve_attributes_impl(
        &self,
        key: &AttributesKey,
    ) -> Result<Option<AttributesRecord>> {
        check_scope(key)?;
        // Each part matches itself or "any" (''); the most specific row wins.
        let sql = format!(
            "{SELECT} WHERE resource_type = $5 AND project IN ('', $1) AND domain IN ('', $2) \
             AND workflow IN ('', $3) AND launch_plan IN ('', $4){MOST_SPECIFIC_FIRST} LIMIT 1"
        );
        let rows = self
            .backend
            .fetch(
                Stmt {
                    sql: sql.into(),
                    args: key_args(key),
                },
                COLS,
            )
            .await
            .map_err(internal)?;
        rows.into_iter().next().map(from_row).transpose()
    }

    pub(super) async fn applying_attributes_impl(
        &self,
        project: &str,
        domain: &str,
        workflow: &str,
        launch_plan: &str,
        resource_types: &[i32],
    ) -> Result<Vec<AttributesRecord>> {
        if resource_types.is_empty() {
            return Ok(Vec::new());
        }
        let types: Vec<String> = (0..resource_types.len())
            .map(|i| format!("${}", i + 5))
            .collect();
        let sql = format!(
            // Placeholders in ascending order: SQLite binds them positionally then.
            "{SELECT} WHERE project IN ('', $1) AND domain IN ('', $2) AND workflow IN ('', $3) \
             AND launch_plan IN ('', $4) AND resource_type IN ({}){MOST_SPECIFIC_FIRST}",
            types.join(", ")
        );
        let mut args = vec![
            text(project),
            text(domain),
            text(workflow),
            text(launch_plan),
        ];
        args.extend(resource_types.iter().map(|t| Value::Int(*t)));
        let rows = self
            .backend
            .fetch(
                Stmt {
                    sql: sql.into(),
                    args,
                },
                COLS,
            )
            .await
            .map_err(internal)?;
        rows.into_iter().map(from_row).collect()
    }

    pub(super) async fn delete_attributes_impl(&self, key: &AttributesKey) -> Result<()> {
        let stmt = Stmt {
            sql: format!("DELETE FROM matchable_attributes{KEY_WHERE}").into(),
            args: key_args(key),
        };
        let mut tx = self.begin().await?;
        let n = B::tx_execute(&mut tx, stmt).await.map_err(internal)?;
        B::commit(tx).await.map_err(internal)?;
        if n == 0 {
            return Err(StoreError::NotFound(key.to_string()));
        }
        Ok(())
    }

    pub(super) async fn list_attributes_impl(
        &self,
        resource_type: i32,
    ) -> Result<Vec<AttributesRecord>> {
        let sql = format!(
            "{SELECT} WHERE resource_type = $1{MOST_SPECIFIC_FIRST}, project, domain, workflow, launch_plan"
        );
        let rows = self
            .backend
            .fetch(
                Stmt {
                    sql: sql.into(),
                    args: vec![Value::Int(resource_type)],
                },
                COLS,
            )
            .await
            .map_err(internal)?;
        rows.into_iter().map(from_row).collect()
    }
}
