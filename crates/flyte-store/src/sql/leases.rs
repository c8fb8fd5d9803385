//! Execution leases (engine replicas on one database) and the notification channel that
//! reaches a lease's holder. Each operation is one statement or one transaction, so two
//! replicas racing for a lease get one winner; on PostgreSQL a takeover skips rows another
//! replica is taking at that moment (`FOR UPDATE SKIP LOCKED`). Each is one autocommitted
//! statement (atomic by itself) rather than BEGIN/statement/COMMIT: one round trip, since
//! the engine claims a lease for every execution it starts.

use std::borrow::Cow;

use std::time::Duration;

use super::backend::{Backend, Col, Row, Stmt, Value};
use super::{Reader, SqlStore, internal, text};
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

/// The database's now, in the column's form: every lease time is the database's clock, so
/// replicas whose clocks disagree still agree on who holds what. PostgreSQL:
/// `clock_timestamp()` (not `now()`, the transaction's start); SQLite: microseconds since the
/// epoch, as it stores `expires_at`.
pub(super) fn db_now<B: Backend>() -> &'static str {
    if B::LOCK_ROWS.is_empty() {
        "CAST((julianday('now') - 2440587.5) * 86400000000.0 AS INTEGER)"
    } else {
        "clock_timestamp()"
    }
}

/// The database's now plus the microseconds bound at `$param`.
fn db_until<B: Backend>(param: usize) -> String {
    if B::LOCK_ROWS.is_empty() {
        format!("({} + ${param})", db_now::<B>())
    } else {
        format!("(clock_timestamp() + ${param}::float8 * interval '1 microsecond')")
    }
}

/// A lease length in microseconds; capped (a century) so the database's arithmetic cannot
/// overflow on an absurd value.
fn ttl_micros(ttl: Duration) -> Value {
    const CAP: i64 = 100 * 365 * 86_400 * 1_000_000;
    Value::BigInt(i64::try_from(ttl.as_micros()).unwrap_or(CAP).min(CAP))
}

impl<B: Backend> SqlStore<B> {
    pub(super) async fn claim_lease_impl(
        &self,
        key: &ExecutionKey,
        owner_id: &str,
        ttl: Duration,
    ) -> Result<bool> {
        let mut args = key_args(key);
        args.extend([text(owner_id), ttl_micros(ttl)]);
        // Take it if there is none, it expired or it is ours; otherwise leave it.
        let sql = format!(
            "INSERT INTO execution_leases (project, domain, name, owner_id, expires_at) \
             VALUES ($1, $2, $3, $4, {until}) \
             ON CONFLICT (project, domain, name) DO UPDATE \
             SET owner_id = excluded.owner_id, expires_at = excluded.expires_at \
             WHERE execution_leases.expires_at <= {now} OR execution_leases.owner_id = excluded.owner_id \
             RETURNING owner_id",
            until = db_until::<B>(5),
            now = db_now::<B>(),
        );
        let upsert = Stmt {
            sql: Cow::Owned(sql),
            args,
        };
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
        ttl: Duration,
    ) -> Result<Vec<ExecutionKey>> {
        // Only leases still valid: one that expired may already be another replica's, and
        // even if not, its holder must give the execution up (a takeover may be under way).
        let sql = format!(
            "UPDATE execution_leases SET expires_at = {until} WHERE owner_id = $1 \
             AND expires_at > {now} RETURNING project, domain, name",
            until = db_until::<B>(2),
            now = db_now::<B>(),
        );
        let stmt = Stmt {
            sql: Cow::Owned(sql),
            args: vec![text(owner_id), ttl_micros(ttl)],
        };
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
    ) -> Result<()> {
        let mut args = key_args(key);
        args.push(text(owner_id));
        let sql = if finished {
            Cow::Borrowed(
                "DELETE FROM execution_leases WHERE project = $1 AND domain = $2 AND name = $3 \
                 AND owner_id = $4",
            )
        } else {
            Cow::Owned(format!(
                "UPDATE execution_leases SET expires_at = {} WHERE project = $1 AND domain = $2 \
                 AND name = $3 AND owner_id = $4",
                db_now::<B>()
            ))
        };
        self.backend
            .fetch(Stmt { sql, args }, &[])
            .await
            .map_err(internal)?;
        Ok(())
    }

    pub(super) async fn release_all_leases_impl(&self, owner_id: &str) -> Result<u64> {
        let sql = format!(
            "UPDATE execution_leases SET expires_at = {now} WHERE owner_id = $1 \
             AND expires_at > {now} RETURNING owner_id",
            now = db_now::<B>(),
        );
        let stmt = Stmt {
            sql: Cow::Owned(sql),
            args: vec![text(owner_id)],
        };
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
        ttl: Duration,
        limit: usize,
    ) -> Result<Vec<ExecutionKey>> {
        let skip_locked = if B::LOCK_ROWS.is_empty() {
            ""
        } else {
            " FOR UPDATE SKIP LOCKED"
        };
        let sql = format!(
            "UPDATE execution_leases SET owner_id = $1, expires_at = {until} \
             WHERE expires_at <= {now} AND (project, domain, name) IN \
             (SELECT project, domain, name FROM execution_leases WHERE expires_at <= {now} \
              ORDER BY expires_at LIMIT $3{skip_locked}) \
             RETURNING project, domain, name",
            until = db_until::<B>(2),
            now = db_now::<B>(),
        );
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let stmt = Stmt {
            sql: Cow::Owned(sql),
            args: vec![text(owner_id), ttl_micros(ttl), Value::BigInt(limit)],
        };
        let rows = self
            .backend
            .fetch(stmt, &[Col::Text, Col::Text, Col::Text])
            .await
            .map_err(internal)?;
        keys_from_rows(rows)
    }

    pub(super) async fn lease_holder_impl(&self, key: &ExecutionKey) -> Result<Option<String>> {
        let sql = format!(
            "SELECT owner_id FROM execution_leases WHERE {KEY_WHERE} AND expires_at > {}",
            db_now::<B>()
        );
        let rows = self
            .backend
            .fetch(
                Stmt {
                    sql: Cow::Owned(sql),
                    args: key_args(key),
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
