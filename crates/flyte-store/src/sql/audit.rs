//! The audit trail of mutating calls (`audit_records`, migration 0011).

use super::backend::{Backend, Col, Stmt, Value};
use super::{Reader, SqlStore, internal, text, ts};
use crate::{AuditQuery, AuditRecord, Result};

const COLS: &[Col] = &[
    Col::BigInt,
    Col::Timestamp,
    Col::Text,
    Col::Text,
    Col::Text,
    Col::Text,
    Col::Text,
    Col::Text,
    Col::Text,
    Col::Text,
];

impl<B: Backend> SqlStore<B> {
    pub(super) async fn insert_audit_records_impl(&self, records: Vec<AuditRecord>) -> Result<()> {
        let mut tx = self.begin().await?;
        for r in records {
            let stmt = Stmt::new(
                "INSERT INTO audit_records (at, subject, email, service, method, project, domain, name, code) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                vec![
                    ts(r.at),
                    text(&r.subject),
                    text(&r.email),
                    text(&r.service),
                    text(&r.method),
                    text(&r.project),
                    text(&r.domain),
                    text(&r.name),
                    text(&r.code),
                ],
            );
            B::tx_execute(&mut tx, stmt).await.map_err(internal)?;
        }
        B::commit(tx).await.map_err(internal)
    }

    pub(super) async fn list_audit_records_impl(&self, q: &AuditQuery) -> Result<Vec<AuditRecord>> {
        // Only whitelisted SQL text is assembled; every value is a parameter.
        let mut sql = String::from(
            "SELECT id, at, subject, email, service, method, project, domain, name, code \
             FROM audit_records WHERE 1 = 1",
        );
        let mut args = Vec::new();
        let mut arg = |sql: &mut String, cond: &str, v: Value| {
            args.push(v);
            sql.push_str(&format!(" AND {cond} ${}", args.len()));
        };
        if let Some(p) = &q.project {
            arg(&mut sql, "project =", text(p));
        }
        if let Some(d) = &q.domain {
            arg(&mut sql, "domain =", text(d));
        }
        if let Some(s) = q.since {
            arg(&mut sql, "at >=", ts(s));
        }
        if let Some(b) = q.before_id {
            arg(&mut sql, "id <", Value::BigInt(b));
        }
        args.push(Value::BigInt(i64::from(q.limit.max(1))));
        sql.push_str(&format!(" ORDER BY id DESC LIMIT ${}", args.len()));
        let stmt = Stmt {
            sql: sql.into(),
            args,
        };
        let rows = self.backend.fetch(stmt, COLS).await.map_err(internal)?;
        rows.into_iter()
            .map(|row| {
                let mut r = Reader::new(row);
                Ok(AuditRecord {
                    id: r.bigint("id")?,
                    at: r.timestamp("at")?,
                    subject: r.text("subject")?,
                    email: r.text("email")?,
                    service: r.text("service")?,
                    method: r.text("method")?,
                    project: r.text("project")?,
                    domain: r.text("domain")?,
                    name: r.text("name")?,
                    code: r.text("code")?,
                })
            })
            .collect()
    }

    pub(super) async fn prune_audit_records_impl(
        &self,
        older_than: chrono::DateTime<chrono::Utc>,
    ) -> Result<u64> {
        let stmt = Stmt::new(
            "DELETE FROM audit_records WHERE at < $1",
            vec![ts(older_than)],
        );
        let mut tx = self.begin().await?;
        let n = B::tx_execute(&mut tx, stmt).await.map_err(internal)?;
        B::commit(tx).await.map_err(internal)?;
        Ok(n)
    }
}
