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
    #[error("{0}")]
    Other(String),
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
