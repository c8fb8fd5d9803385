//! Compile errors: each names the node and the variable a user can act on.

use std::fmt;

/// One problem found by the compiler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileError {
    /// The node the problem is in; `None` for workflow-level problems.
    pub node_id: Option<String>,
    pub kind: CompileErrorKind,
}

impl CompileError {
    pub fn node(node_id: impl Into<String>, kind: CompileErrorKind) -> Self {
        Self {
            node_id: Some(node_id.into()),
            kind,
        }
    }

    pub fn workflow(kind: CompileErrorKind) -> Self {
        Self {
            node_id: None,
            kind,
        }
    }
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.node_id {
            Some(id) => write!(f, "node {id}: {}", self.kind),
            None => write!(f, "workflow: {}", self.kind),
        }
    }
}

impl std::error::Error for CompileError {}

/// What went wrong. Messages are written for the person who wrote the workflow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompileErrorKind {
    #[error("the workflow spec has no template")]
    MissingTemplate,
    #[error("{field} is required")]
    ValueRequired { field: String },
    #[error("workflow {workflow} has no nodes")]
    NoNodes { workflow: String },
    #[error("the node id is used by more than one node")]
    DuplicateNodeId,
    #[error("'{0}' is reserved for the node the platform adds; rename the node")]
    ReservedNodeId(String),
    #[error("interface variable {direction} '{var}' {problem}")]
    InvalidVariable {
        direction: &'static str,
        var: String,
        problem: &'static str,
    },
    #[error("input '{var}' is bound to an output of node '{upstream}', which does not exist")]
    UpstreamNodeNotFound { var: String, upstream: String },
    #[error("depends on node '{upstream}' (upstream_node_ids), which does not exist")]
    DependencyNotFound { upstream: String },
    #[error(
        "input '{var}' is bound to output '{output}' of node '{upstream}', which has no such output (it has: {available})"
    )]
    UpstreamOutputNotFound {
        var: String,
        upstream: String,
        output: String,
        available: String,
    },
    #[error("input '{var}' is not an input of this node (its inputs are: {available})")]
    UnknownInput { var: String, available: String },
    #[error("input '{var}' is bound more than once")]
    InputBoundTwice { var: String },
    #[error("input '{var}' is required but not bound")]
    InputNotBound { var: String },
    #[error("input '{var}' has no binding value")]
    EmptyBinding { var: String },
    #[error("input '{var}' expects type {expected} but is bound to {from} of type {actual}")]
    TypeMismatch {
        var: String,
        from: String,
        expected: String,
        actual: String,
    },
    #[error("input '{var}': value '{value}' is not one of the enum values [{allowed}]")]
    IllegalEnumValue {
        var: String,
        value: String,
        allowed: String,
    },
    #[error("input '{var}': the binding matches more than one variant of {expected}")]
    AmbiguousUnionBinding { var: String, expected: String },
    #[error("input '{var}': the binding matches no variant of {expected}")]
    NoMatchingUnionVariant { var: String, expected: String },
    #[error(
        "input '{var}': attribute '{attr}' does not exist on output '{output}' of type {actual}"
    )]
    AttributeNotFound {
        var: String,
        output: String,
        attr: String,
        actual: String,
    },
    #[error("input '{var}': cannot parse output reference '{output}'")]
    BadOutputReference { var: String, output: String },
    #[error("output alias '{alias}' refers to output '{var}', which does not exist")]
    AliasNotFound { var: String, alias: String },
    #[error("output '{var}' has more than one alias")]
    DuplicateAlias { var: String },
    #[error("references task {0}, which is not registered")]
    TaskNotFound(String),
    #[error("references launch plan {0}, which is not registered")]
    LaunchPlanNotFound(String),
    #[error("references sub-workflow {0}, which is not part of the workflow spec's sub_workflows")]
    SubWorkflowNotFound(String),
    #[error("sub-workflow {0} refers to itself (recursion is not supported)")]
    RecursiveSubWorkflow(String),
    #[error("the node has no target (task, workflow, branch, gate or array node)")]
    MissingTarget,
    #[error("the branch has no if-case")]
    BranchWithoutCase,
    #[error("a branch case has no condition")]
    BranchWithoutCondition,
    #[error("a branch case has no then-node")]
    BranchWithoutThenNode,
    #[error("the branch has neither an else node nor an error for when no case matches")]
    BranchWithoutDefault,
    #[error("the branch condition uses '{var}', which is not an input of the branch node")]
    UnknownConditionOperand { var: String },
    #[error("the branch condition compares {left} with {right}")]
    ConditionTypeMismatch { left: String, right: String },
    #[error("output '{var}' has type {first} in one branch and {other} in another")]
    BranchOutputMismatch {
        var: String,
        first: String,
        other: String,
    },
    #[error("the gate node has no condition (approve, signal or sleep)")]
    GateWithoutCondition,
    #[error("the array node has no sub-node")]
    ArrayWithoutNode,
    #[error("bound input '{var}' is not an input of the array's sub-node")]
    UnknownBoundInput { var: String },
    #[error("the workflow graph has a cycle: {0}")]
    Cycle(String),
    #[error("nodes {0} cannot be reached from the start of the workflow")]
    Unreachable(String),
    /// Past [`crate::types::MAX_NESTING_DEPTH`]; `place` is e.g. "input 'x'".
    #[error("{place}: {error}")]
    TooDeep {
        place: String,
        error: crate::types::TooDeep,
    },
    #[error("{0}")]
    Invalid(String),
}

/// All problems found; Display lists each on its own line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CompileErrors(pub Vec<CompileError>);

impl CompileErrors {
    pub fn single(error: CompileError) -> Self {
        Self(vec![error])
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &CompileError> {
        self.0.iter()
    }
}

impl fmt::Display for CompileErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for CompileErrors {}
