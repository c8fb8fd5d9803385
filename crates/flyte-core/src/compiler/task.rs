//! Task validation (flyteadmin `validation/task_validator.go`, propeller `task_compiler.go`).

use flyteidl::core::{CompiledTask, TaskTemplate, task_template};

use super::graph::validate_interface_vars;
use super::{CompileError, CompileErrorKind, CompileErrors};
use crate::ids::ResourceType;

/// Validates a task template and wraps it as a `CompiledTask`.
pub fn compile_task(template: &TaskTemplate) -> Result<CompiledTask, CompileErrors> {
    let mut errors = Vec::new();
    let required = |errors: &mut Vec<CompileError>, field: &str| {
        errors.push(CompileError::workflow(CompileErrorKind::ValueRequired {
            field: format!("task {field}"),
        }))
    };
    match &template.id {
        None => required(&mut errors, "id"),
        Some(id) if ResourceType::from_proto(id.resource_type) != Some(ResourceType::Task) => {
            errors.push(CompileError::workflow(CompileErrorKind::Invalid(format!(
                "task id {} must have resource type TASK",
                crate::ids::display_identifier(id)
            ))))
        }
        Some(_) => {}
    }
    if template.r#type.is_empty() {
        required(&mut errors, "type");
    }
    match &template.metadata {
        None => required(&mut errors, "metadata"),
        Some(m) => {
            if m.runtime.as_ref().is_some_and(|r| r.version.is_empty()) {
                required(&mut errors, "metadata.runtime.version");
            }
        }
    }
    match &template.interface {
        None => required(&mut errors, "interface"),
        Some(iface) => errors.extend(
            validate_interface_vars(iface)
                .into_iter()
                .map(CompileError::workflow),
        ),
    }
    match &template.target {
        Some(task_template::Target::Container(c)) if c.image.is_empty() => {
            required(&mut errors, "container.image")
        }
        Some(task_template::Target::K8sPod(p)) if p.pod_spec.is_none() => {
            required(&mut errors, "k8s_pod.pod_spec")
        }
        // Plugin tasks (agents, SQL, custom) may carry no container.
        _ => {}
    }
    if errors.is_empty() {
        Ok(CompiledTask {
            template: Some(template.clone()),
        })
    } else {
        Err(CompileErrors(errors))
    }
}
