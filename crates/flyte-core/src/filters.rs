//! Flyte's list-filter grammar (flyteadmin `util/filters.go`): expressions such as
//! `eq(name,my_wf)+gte(created_at,2024-01-01T00:00:00Z)+value_in(phase,SUCCEEDED;FAILED)`
//! joined by `+`. A field may carry an entity prefix (`workflow.name`), which is kept so the
//! API layer can check it belongs to the resource being listed.

/// Comparison operators of the grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterOp {
    Eq,
    Ne,
    Gt,
    Gte,
    Lt,
    Lte,
    Contains,
    ValueIn,
    ValueNotIn,
}

/// One parsed expression. `values` has exactly one element except for `value_in`/`value_not_in`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// The entity prefix if one was written (`workflow` in `workflow.name`).
    pub entity: Option<String>,
    pub field: String,
    pub op: FilterOp,
    pub values: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortDirection {
    #[default]
    Descending,
    Ascending,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortKey {
    pub field: String,
    pub direction: SortDirection,
}
