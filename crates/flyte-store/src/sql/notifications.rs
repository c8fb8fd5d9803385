//! The notification outbox (crates/flyte-notify). Rows are added by [`enqueue_stmt`] in the
//! transaction that writes an execution's terminal phase; the delivery loop claims due rows
//! with a lease and writes each attempt's outcome.

use std::borrow::Cow;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::backend::{Backend, Col, Row, Stmt, Value};
use super::{Reader, SqlStore, internal, text, ts};
use crate::{
    ExecutionKey, ExecutionRecord, NOTIFY_PHASES, NotificationRecord, NotificationState,
    NotificationUpdate, Result,
};

const COLS: &str =
    "project, domain, name, phase, created_at, due_at, state, attempts, delivered, last_error";
const COL_TYPES: [Col; 10] = [
    Col::Text,
    Col::Text,
    Col::Text,
    Col::Text,
    Col::Timestamp,
    Col::Timestamp,
    Col::Int,
    Col::Int,
    Col::Text,
    Col::Text,
];

/// The outbox row for an execution written in a terminal phase it asks to be notified of
/// (its stored `notify_phases`, read in the same transaction), or `None` for a phase that is
/// not terminal. Idempotent: the same (execution, phase) written again adds nothing, so one
/// phase change is one notification however often the terminal record is rewritten
/// (archive, events replayed).
pub(super) fn enqueue_stmt(e: &ExecutionRecord) -> Option<Stmt> {
    if !NOTIFY_PHASES.contains(&e.phase.as_str()) {
        return None;
    }
    Some(Stmt::new(
        "INSERT INTO notification_outbox (project, domain, name, phase, created_at, due_at) \
         SELECT project, domain, name, $4, $5, $5 FROM executions \
         WHERE project = $1 AND domain = $2 AND name = $3 AND notify_phases LIKE $6 \
         ON CONFLICT (project, domain, name, phase) DO NOTHING",
        vec![
            text(&e.key.project),
            text(&e.key.domain),
            text(&e.key.name),
            text(&e.phase),
            ts(e.updated_at),
            // The phase names hold `_`, LIKE's any-character, harmlessly: no phase name
            // matches another's pattern.
            Value::Text(format!("%,{},%", e.phase)),
        ],
    ))
}

fn record(row: Row) -> Result<NotificationRecord> {
    let mut r = Reader::new(row);
    Ok(NotificationRecord {
        execution: ExecutionKey {
            project: r.text("project")?,
            domain: r.text("domain")?,
            name: r.text("name")?,
        },
        phase: r.text("phase")?,
        created_at: r.timestamp("created_at")?,
        due_at: r.timestamp("due_at")?,
        state: NotificationState::from_i32(r.int("state")?),
        attempts: r.int("attempts")?,
        delivered: r
            .text("delivered")?
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect(),
        last_error: r.text("last_error")?,
    })
}

impl<B: Backend> SqlStore<B> {
    pub(super) async fn claim_notifications_impl(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<NotificationRecord>> {
        let skip_locked = if B::LOCK_ROWS.is_empty() {
            ""
        } else {
            " FOR UPDATE SKIP LOCKED"
        };
        let until = now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX);
        // Due, pending and not leased (or the lease ran out: its owner died mid-attempt).
        let sql = format!(
            "UPDATE notification_outbox SET owner = $1, lease_until = $3 \
             WHERE (project, domain, name, phase) IN \
             (SELECT project, domain, name, phase FROM notification_outbox \
              WHERE state = 0 AND due_at <= $2 AND (lease_until IS NULL OR lease_until <= $2) \
              ORDER BY due_at LIMIT $4{skip_locked}) \
             RETURNING {COLS}"
        );
        let stmt = Stmt {
            sql: Cow::Owned(sql),
            args: vec![
                text(owner),
                ts(now),
                ts(until),
                Value::BigInt(i64::try_from(limit).unwrap_or(i64::MAX)),
            ],
        };
        let rows = self
            .backend
            .fetch(stmt, &COL_TYPES)
            .await
            .map_err(internal)?;
        let mut out = rows.into_iter().map(record).collect::<Result<Vec<_>>>()?;
        out.sort_by_key(|r| r.due_at);
        Ok(out)
    }

    pub(super) async fn finish_notification_impl(
        &self,
        execution: &ExecutionKey,
        phase: &str,
        owner: &str,
        update: NotificationUpdate,
    ) -> Result<bool> {
        // Fenced by the claim: an owner whose lease was taken over changes nothing.
        let stmt = Stmt::new(
            "UPDATE notification_outbox SET state = $6, attempts = $7, due_at = $8, \
             delivered = $9, last_error = $10, owner = '', lease_until = NULL \
             WHERE project = $1 AND domain = $2 AND name = $3 AND phase = $4 AND owner = $5 \
             RETURNING project",
            vec![
                text(&execution.project),
                text(&execution.domain),
                text(&execution.name),
                text(phase),
                text(owner),
                Value::Int(update.state as i32),
                Value::Int(update.attempts),
                ts(update.due_at),
                Value::Text(update.delivered.join("\n")),
                Value::Text(update.last_error),
            ],
        );
        let rows = self
            .backend
            .fetch(stmt, &[Col::Text])
            .await
            .map_err(internal)?;
        Ok(!rows.is_empty())
    }

    pub(super) async fn prune_notifications_impl(
        &self,
        closed_before: DateTime<Utc>,
        limit: usize,
    ) -> Result<u64> {
        // Closed rows by the (state, due_at) index, a bounded batch per statement.
        let stmt = Stmt::new(
            "DELETE FROM notification_outbox WHERE (project, domain, name, phase) IN \
             (SELECT project, domain, name, phase FROM notification_outbox \
              WHERE state IN (1, 2) AND due_at < $1 LIMIT $2)",
            vec![
                ts(closed_before),
                Value::BigInt(i64::try_from(limit).unwrap_or(i64::MAX)),
            ],
        );
        let mut tx = self.begin().await?;
        let n = B::tx_execute(&mut tx, stmt).await.map_err(internal)?;
        B::commit(tx).await.map_err(internal)?;
        Ok(n)
    }

    pub(super) async fn list_notifications_impl(
        &self,
        execution: &ExecutionKey,
    ) -> Result<Vec<NotificationRecord>> {
        let stmt = Stmt {
            sql: Cow::Owned(format!(
                "SELECT {COLS} FROM notification_outbox \
                 WHERE project = $1 AND domain = $2 AND name = $3 ORDER BY created_at, phase"
            )),
            args: vec![
                text(&execution.project),
                text(&execution.domain),
                text(&execution.name),
            ],
        };
        let rows = self
            .backend
            .fetch(stmt, &COL_TYPES)
            .await
            .map_err(internal)?;
        rows.into_iter().map(record).collect()
    }
}
