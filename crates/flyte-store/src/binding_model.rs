//! What the store keeps for role bindings made over the API (docs/auth.md).

use chrono::{DateTime, Utc};

/// A user or group bound to a role on a project (and domain). The store does not interpret
/// roles: flyte-auth does.
#[derive(Debug, Clone, PartialEq)]
pub struct RoleBindingRecord {
    /// Assigned by the store on creation (ignored when creating).
    pub id: i64,
    /// `user` or `group`.
    pub subject_kind: String,
    /// The user's `sub` or email, or the group's name.
    pub subject: String,
    pub role: String,
    /// A project, or `*`.
    pub project: String,
    /// One domain; empty: every domain.
    pub domain: String,
    /// Who made it (the caller's subject).
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

/// One audited mutating call (docs/auth.md, "Audit").
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    /// Assigned by the store (ignored when inserting); larger = later.
    pub id: i64,
    pub at: DateTime<Utc>,
    pub subject: String,
    pub email: String,
    pub service: String,
    pub method: String,
    pub project: String,
    pub domain: String,
    pub name: String,
    /// The outcome's gRPC code name (`Ok`, `PermissionDenied`, …).
    pub code: String,
}

/// Which audit records to list: newest first, `limit` of them, older than `before_id` (the
/// previous page's last id) when set.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditQuery {
    pub project: Option<String>,
    pub domain: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub before_id: Option<i64>,
    pub limit: u32,
}
