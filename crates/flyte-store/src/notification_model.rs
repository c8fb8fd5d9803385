//! What the store keeps for notifications (the outbox crates/flyte-notify delivers from).

use chrono::{DateTime, Utc};

use crate::ExecutionKey;

/// The terminal phases an outbox row is written for (flyteadmin notifies on these only).
pub const NOTIFY_PHASES: [&str; 4] = ["SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"];

/// Where an outbox row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotificationState {
    /// To be (re)tried at `due_at`.
    Pending = 0,
    /// Every destination delivered (or there was nothing to send).
    Delivered = 1,
    /// Gave up after the last attempt.
    Failed = 2,
}

impl NotificationState {
    pub fn from_i32(v: i32) -> Self {
        match v {
            1 => Self::Delivered,
            2 => Self::Failed,
            _ => Self::Pending,
        }
    }
}

/// One outbox row: execution `execution` reached `phase`.
#[derive(Debug, Clone, PartialEq)]
pub struct NotificationRecord {
    pub execution: ExecutionKey,
    pub phase: String,
    pub created_at: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
    pub state: NotificationState,
    /// Attempts made so far.
    pub attempts: i32,
    /// Destinations already delivered (a retry sends only the others); one given up on is
    /// prefixed `!`.
    pub delivered: Vec<String>,
    pub last_error: String,
}

/// The outcome of one delivery attempt, written by the claim's owner.
#[derive(Debug, Clone, PartialEq)]
pub struct NotificationUpdate {
    pub state: NotificationState,
    pub attempts: i32,
    /// When to try again (`Pending`).
    pub due_at: DateTime<Utc>,
    pub delivered: Vec<String>,
    pub last_error: String,
}
