//! Launch-plan schedules' bookkeeping (crates/flyte-scheduler): when each version was
//! activated and the latest tick launched for it. Activation is written in the activating
//! transaction, with the database's clock (as leases), so every replica's scheduler sees the
//! same baseline.

use std::borrow::Cow;

use chrono::{DateTime, Utc};

use super::backend::{Backend, Col, Stmt, Value};
use super::leases::db_now;
use super::{Reader, SqlStore, internal, text, ts};
use crate::{EntityKey, Result, ScheduleRecord};

fn version_args(key: &EntityKey) -> Vec<Value> {
    vec![
        text(&key.project),
        text(&key.domain),
        text(&key.name),
        text(&key.version),
    ]
}

/// Starts (or restarts) the schedule bookkeeping of a launch plan version being activated:
/// activated now, no tick yet. Run it in the activating transaction *before* the state
/// changes: a version that is already active keeps its row (activating it again must not
/// move its baseline).
pub(super) fn schedule_activated<B: Backend>(key: &EntityKey) -> Stmt {
    let sql = format!(
        "INSERT INTO launch_plan_schedules (project, domain, name, version, activated_at, last_tick_at, last_error) \
         VALUES ($1, $2, $3, $4, {now}, NULL, '') \
         ON CONFLICT (project, domain, name, version) DO UPDATE \
         SET activated_at = excluded.activated_at, last_tick_at = NULL, last_error = '' \
         WHERE NOT EXISTS (SELECT 1 FROM entities WHERE resource_type = 3 AND project = $1 \
         AND domain = $2 AND name = $3 AND version = $4 AND state = 1)",
        now = db_now::<B>(),
    );
    Stmt {
        sql: Cow::Owned(sql),
        args: version_args(key),
    }
}

impl<B: Backend> SqlStore<B> {
    pub(super) async fn list_active_schedules_impl(&self) -> Result<Vec<ScheduleRecord>> {
        let stmt = Stmt::new(
            "SELECT s.project, s.domain, s.name, s.version, s.activated_at, s.last_tick_at, s.last_error \
             FROM launch_plan_schedules s JOIN entities e ON e.resource_type = 3 \
             AND e.project = s.project AND e.domain = s.domain AND e.name = s.name \
             AND e.version = s.version WHERE e.state = 1 \
             ORDER BY s.project, s.domain, s.name",
            Vec::new(),
        );
        let cols = [
            Col::Text,
            Col::Text,
            Col::Text,
            Col::Text,
            Col::Timestamp,
            Col::Timestamp,
            Col::Text,
        ];
        let rows = self.backend.fetch(stmt, &cols).await.map_err(internal)?;
        rows.into_iter()
            .map(|row| {
                let mut r = Reader::new(row);
                Ok(ScheduleRecord {
                    launch_plan: EntityKey {
                        resource: crate::ResourceType::LaunchPlan,
                        project: r.text("project")?,
                        domain: r.text("domain")?,
                        name: r.text("name")?,
                        version: r.text("version")?,
                    },
                    activated_at: r.timestamp("activated_at")?,
                    last_tick_at: r.opt_timestamp("last_tick_at")?,
                    last_error: r.text("last_error")?,
                })
            })
            .collect()
    }

    pub(super) async fn record_schedule_tick_impl(
        &self,
        key: &EntityKey,
        activated_at: DateTime<Utc>,
        tick: DateTime<Utc>,
        error: &str,
    ) -> Result<bool> {
        let mut args = version_args(key);
        args.extend([ts(activated_at), ts(tick), text(error)]);
        // A compare-and-set: a replica that lost a race, or a tick older than the recorded
        // one, changes nothing.
        let stmt = Stmt::new(
            "UPDATE launch_plan_schedules SET last_tick_at = $6, last_error = $7 \
             WHERE project = $1 AND domain = $2 AND name = $3 AND version = $4 \
             AND activated_at = $5 AND (last_tick_at IS NULL OR last_tick_at < $6) \
             RETURNING project",
            args,
        );
        let rows = self
            .backend
            .fetch(stmt, &[Col::Text])
            .await
            .map_err(internal)?;
        Ok(!rows.is_empty())
    }
}
