//! Role bindings made over the API (`role_bindings`, migration 0011).

use super::backend::{Backend, Col, Stmt, Value};
use super::{Reader, SqlStore, internal, text, ts, write_error};
use crate::{Result, RoleBindingRecord, StoreError};

const COLS: &[Col] = &[
    Col::BigInt,
    Col::Text,
    Col::Text,
    Col::Text,
    Col::Text,
    Col::Text,
    Col::Text,
    Col::Timestamp,
];

fn read(row: super::backend::Row) -> Result<RoleBindingRecord> {
    let mut r = Reader::new(row);
    Ok(RoleBindingRecord {
        id: r.bigint("id")?,
        subject_kind: r.text("subject_kind")?,
        subject: r.text("subject")?,
        role: r.text("role")?,
        project: r.text("project")?,
        domain: r.text("domain")?,
        created_by: r.text("created_by")?,
        created_at: r.timestamp("created_at")?,
    })
}

impl<B: Backend> SqlStore<B> {
    pub(super) async fn list_role_bindings_impl(&self) -> Result<Vec<RoleBindingRecord>> {
        let stmt = Stmt::new(
            "SELECT id, subject_kind, subject, role, project, domain, created_by, created_at \
             FROM role_bindings ORDER BY id",
            Vec::new(),
        );
        let rows = self.backend.fetch(stmt, COLS).await.map_err(internal)?;
        rows.into_iter().map(read).collect()
    }

    pub(super) async fn create_role_binding_impl(
        &self,
        b: RoleBindingRecord,
    ) -> Result<RoleBindingRecord> {
        let stmt = Stmt::new(
            "INSERT INTO role_bindings (subject_kind, subject, role, project, domain, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             RETURNING id, subject_kind, subject, role, project, domain, created_by, created_at",
            vec![
                text(&b.subject_kind),
                text(&b.subject),
                text(&b.role),
                text(&b.project),
                text(&b.domain),
                text(&b.created_by),
                ts(b.created_at),
            ],
        );
        let rows = self.backend.fetch(stmt, COLS).await.map_err(|e| {
            write_error(
                e,
                || {
                    format!(
                        "role binding of {} `{}` as {} on `{}`{}",
                        b.subject_kind,
                        b.subject,
                        b.role,
                        b.project,
                        if b.domain.is_empty() {
                            String::new()
                        } else {
                            format!(" domain `{}`", b.domain)
                        }
                    )
                },
                &b.project,
            )
        })?;
        let row = rows
            .into_iter()
            .next()
            .ok_or_else(|| StoreError::NotFound("the role binding just inserted".into()))?;
        read(row)
    }

    pub(super) async fn delete_role_binding_impl(&self, id: i64) -> Result<()> {
        let stmt = Stmt::new(
            "DELETE FROM role_bindings WHERE id = $1 RETURNING id",
            vec![Value::BigInt(id)],
        );
        let rows = self
            .backend
            .fetch(stmt, &[Col::BigInt])
            .await
            .map_err(internal)?;
        if rows.is_empty() {
            return Err(StoreError::NotFound(format!("role binding {id}")));
        }
        Ok(())
    }
}
