//! What the store keeps for launch-plan schedules (the scheduler's bookkeeping).

use chrono::{DateTime, Utc};

use crate::EntityKey;

/// An active launch plan version's schedule state. The schedule itself is in the launch
/// plan's spec; this is when it became active and how far the scheduler got.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleRecord {
    /// The launch plan version.
    pub launch_plan: EntityKey,
    /// When this version was last activated (the database's clock).
    pub activated_at: DateTime<Utc>,
    /// The latest tick launched (or given up on) since then; `None` before the first.
    pub last_tick_at: Option<DateTime<Utc>>,
    /// Why the last tick could not launch; empty when it did.
    pub last_error: String,
}
