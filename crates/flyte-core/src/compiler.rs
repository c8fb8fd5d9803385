//! The workflow compiler: WorkflowSpec + referenced tasks and launch plans → CompiledWorkflowClosure.
