//! Identifiers: resource types and the validation of project, domain, name and version.

/// The resource types that are registered as immutable, versioned entities.
/// The discriminants are `flyteidl.core.ResourceType` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceType {
    Task = 1,
    Workflow = 2,
    LaunchPlan = 3,
}

impl ResourceType {
    pub fn from_proto(value: i32) -> Option<Self> {
        match value {
            1 => Some(Self::Task),
            2 => Some(Self::Workflow),
            3 => Some(Self::LaunchPlan),
            _ => None,
        }
    }

    /// The lower-case name used in messages and in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Task => "task",
            Self::Workflow => "workflow",
            Self::LaunchPlan => "launch_plan",
        }
    }
}
