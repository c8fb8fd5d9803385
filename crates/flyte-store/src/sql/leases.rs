//! Execution leases (engine replicas on one database) and the notification channel that
//! reaches a lease's holder. Each operation is one statement or one transaction, so two
//! replicas racing for a lease get one winner; on PostgreSQL a takeover skips rows another
//! replica is taking at that moment (`FOR UPDATE SKIP LOCKED`). Each is one autocommitted
//! statement (atomic by itself) rather than BEGIN/statement/COMMIT: one round trip, since
//! the engine claims a lease for every execution it starts.

use std::borrow::Cow;

use chrono::{DateTime, Utc};

use super::backend::{Backend, Col, Row, Stmt, Value};
use super::{Reader, SqlStore, internal, text, ts};
use crate::{ExecutionKey, Result, StoreError};

const KEY_WHERE: &str = "project = $1 AND domain = $2 AND name = $3";

fn key_args(key: &ExecutionKey) -> Vec<Value> {
    vec![text(&key.project), text(&key.domain), text(&key.name)]
}

fn keys_from_rows(rows: Vec<Row>) -> Result<Vec<ExecutionKey>> {
    rows.into_iter()
        .map(|row| {
            let mut r = Reader::new(row);
            Ok(ExecutionKey {
                project: r.text("project")?,
                domain: r.text("domain")?,
                name: r.text("name")?,
            })
        })
        .collect()
}

impl<B: Backend> SqlStore<B> {
    pub(super) async fn claim_lease_impl(
        &self,
        key: &ExecutionKey,
        owner_id: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let mut args = key_args(key);
        args.extend([text(owner_id), ts(expires_at), ts(now)]);
        // Take it if there is none, it expired or it is ours; otherwise leave it.
        let upsert = Stmt::new(
            "INSERT INTO execution_leases (project, domain, name, owner_id, expires_at) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (project, domain, name) DO UPDATE \
             SET owner_id = excluded.owner_id, expires_at = excluded.expires_at \
             WHERE execution_leases.expires_at <= $6 OR execution_leases.owner_id = excluded.owner_id \
             RETURNING owner_id",
            args,
        );
        let rows = self
            .backend
            .fetch(upsert, &[Col::Text])
            .await
            .map_err(internal)?;
        Ok(!rows.is_empty())
    }

    pub(super) async fn renew_leases_impl(
        &self,
        owner_id: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Vec<ExecutionKey>> {
        // Only leases still valid: one that expired may already be another replica's, and
        // even if not, its holder must give the execution up (a takeover may be under way).
        let stmt = Stmt::new(
            "UPDATE execution_leases SET expires_at = $2 WHERE owner_id = $1 AND expires_at > $3 \
             RETURNING project, domain, name",
            vec![text(owner_id), ts(expires_at), ts(now)],
        );
        let rows = self
            .backend
            .fetch(stmt, &[Col::Text, Col::Text, Col::Text])
            .await
            .map_err(internal)?;
        keys_from_rows(rows)
    }

    pub(super) async fn release_lease_impl(
        &self,
        key: &ExecutionKey,
        owner_id: &str,
        finished: bool,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut args = key_args(key);
        args.push(text(owner_id));
        let stmt = if finished {
            Stmt::new(
                "DELETE FROM execution_leases WHERE project = $1 AND domain = $2 AND name = $3 \
                 AND owner_id = $4",
                args,
            )
        } else {
            args.push(ts(now));
            Stmt::new(
                "UPDATE execution_leases SET expires_at = $5 WHERE project = $1 AND domain = $2 \
                 AND name = $3 AND owner_id = $4",
                args,
            )
        };
        self.backend.fetch(stmt, &[]).await.map_err(internal)?;
        Ok(())
    }

    pub(super) async fn release_all_leases_impl(
        &self,
        owner_id: &str,
        now: DateTime<Utc>,
    ) -> Result<u64> {
        let stmt = Stmt::new(
            "UPDATE execution_leases SET expires_at = $2 WHERE owner_id = $1 AND expires_at > $2 \
             RETURNING owner_id",
            vec![text(owner_id), ts(now)],
        );
        let rows = self
            .backend
            .fetch(stmt, &[Col::Text])
            .await
            .map_err(internal)?;
        Ok(rows.len() as u64)
    }

    pub(super) async fn take_expired_leases_impl(
        &self,
        owner_id: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<ExecutionKey>> {
        let skip_locked = if B::LOCK_ROWS.is_empty() {
            ""
        } else {
            " FOR UPDATE SKIP LOCKED"
        };
        let sql = format!(
            "UPDATE execution_leases SET owner_id = $1, expires_at = $2 \
             WHERE expires_at <= $3 AND (project, domain, name) IN \
             (SELECT project, domain, name FROM execution_leases WHERE expires_at <= $3 \
              ORDER BY expires_at LIMIT $4{skip_locked}) \
             RETURNING project, domain, name"
        );
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let stmt = Stmt {
            sql: Cow::Owned(sql),
            args: vec![
                text(owner_id),
                ts(expires_at),
                ts(now),
                Value::BigInt(limit),
            ],
        };
        let rows = self
            .backend
            .fetch(stmt, &[Col::Text, Col::Text, Col::Text])
            .await
            .map_err(internal)?;
        keys_from_rows(rows)
    }

    pub(super) async fn lease_holder_impl(
        &self,
        key: &ExecutionKey,
        now: DateTime<Utc>,
    ) -> Result<Option<String>> {
        let mut args = key_args(key);
        args.push(ts(now));
        let sql =
            format!("SELECT owner_id FROM execution_leases WHERE {KEY_WHERE} AND expires_at > $4");
        let rows = self
            .backend
            .fetch(
                Stmt {
                    sql: Cow::Owned(sql),
                    args,
                },
                &[Col::Text],
            )
            .await
            .map_err(internal)?;
        match rows.into_iter().next() {
            None => Ok(None),
            Some(row) => Reader::new(row).text("owner_id").map(Some),
        }
    }

    pub(super) async fn notify_impl(&self, channel: &str, payload: &str) -> Result<()> {
        if payload.len() >= 8000 {
            // PostgreSQL refuses payloads of 8000 bytes or more.
            return Err(StoreError::InvalidArgument(format!(
                "notification payload of {} bytes: at most 7999",
                payload.len()
            )));
        }
        self.backend
            .notify(channel, payload)
            .await
            .map_err(internal)
    }
}
