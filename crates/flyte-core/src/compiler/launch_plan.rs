//! Launch-plan validation (flyteadmin `validation/launch_plan_validator.go`).

use flyteidl::admin::LaunchPlanSpec;
use std::collections::BTreeMap;

use flyteidl::core::{
    Literal, Parameter, ParameterMap, TypedInterface, Variable, VariableMap, parameter,
};

use super::{CompileError, CompileErrorKind, CompileErrors};
use crate::types::{
    check_literal_depth, check_type_depth, display_type, is_castable, literal_is_instance,
    literal_type_of,
};

/// Fixed and default inputs must name workflow inputs with matching types, and no input may
/// be both fixed and defaulted. Expected inputs are the workflow inputs that are not fixed:
/// the launch plan's default where it has one, otherwise the workflow's variable, required.
pub fn validate_launch_plan(
    spec: &LaunchPlanSpec,
    workflow_interface: &TypedInterface,
) -> Result<(ParameterMap, VariableMap), CompileErrors> {
    let empty = VariableMap::default();
    let wf_inputs = workflow_interface.inputs.as_ref().unwrap_or(&empty);
    let defaults = spec
        .default_inputs
        .as_ref()
        .map(|p| &p.parameters)
        .cloned()
        .unwrap_or_default();
    let fixed = spec
        .fixed_inputs
        .as_ref()
        .map(|m| &m.literals)
        .cloned()
        .unwrap_or_default();
    let too_deep = nesting_errors(&defaults, &fixed);
    if !too_deep.is_empty() {
        return Err(CompileErrors(too_deep));
    }
    let mut errors = Vec::new();
    let mut err = |msg: String| errors.push(CompileError::workflow(CompileErrorKind::Invalid(msg)));
    let known = || {
        wf_inputs
            .variables
            .keys()
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    };

    for (name, param) in &defaults {
        let Some(wf_var) = wf_inputs.variables.get(name) else {
            err(format!(
                "default input '{name}' is not an input of the workflow (its inputs are: {})",
                known()
            ));
            continue;
        };
        let Some(wf_type) = wf_var.r#type.as_ref() else {
            continue;
        };
        match param.var.as_ref().and_then(|v| v.r#type.as_ref()) {
            None => err(format!("default input '{name}' has no type")),
            Some(t) if !is_castable(t, wf_type) => err(format!(
                "default input '{name}' has type {}, but the workflow input has type {}",
                display_type(t),
                display_type(wf_type)
            )),
            Some(_) => {}
        }
        if let Some(parameter::Behavior::Default(lit)) = &param.behavior
            && !literal_is_instance(lit, wf_type)
        {
            err(format!(
                "default value of input '{name}' is a {}, but the workflow input has type {}",
                display_type(&literal_type_of(lit)),
                display_type(wf_type)
            ));
        }
        if fixed.contains_key(name) {
            err(format!(
                "input '{name}' is both a fixed input and a default input; it can only be one"
            ));
        }
    }

    for (name, lit) in &fixed {
        let Some(wf_var) = wf_inputs.variables.get(name) else {
            err(format!(
                "fixed input '{name}' is not an input of the workflow (its inputs are: {})",
                known()
            ));
            continue;
        };
        if let Some(wf_type) = wf_var.r#type.as_ref()
            && !literal_is_instance(lit, wf_type)
        {
            err(format!(
                "fixed input '{name}' is a {}, but the workflow input has type {}",
                display_type(&literal_type_of(lit)),
                display_type(wf_type)
            ));
        }
    }

    if !errors.is_empty() {
        return Err(CompileErrors(errors));
    }

    let parameters = wf_inputs
        .variables
        .iter()
        .filter(|(name, _)| !fixed.contains_key(*name))
        .map(|(name, var)| {
            let param = defaults.get(name).cloned().unwrap_or_else(|| Parameter {
                var: Some(Variable {
                    r#type: var.r#type.clone(),
                    description: var.description.clone(),
                    ..Default::default()
                }),
                behavior: Some(parameter::Behavior::Required(true)),
            });
            (name.clone(), param)
        })
        .collect();
    Ok((
        ParameterMap { parameters },
        workflow_interface.outputs.clone().unwrap_or_default(),
    ))
}

/// Default and fixed inputs nested past the bound, checked before anything walks them.
fn nesting_errors(
    defaults: &BTreeMap<String, Parameter>,
    fixed: &BTreeMap<String, Literal>,
) -> Vec<CompileError> {
    let too_deep =
        |place: String, error| CompileError::workflow(CompileErrorKind::TooDeep { place, error });
    let mut errors = Vec::new();
    for (name, param) in defaults {
        if let Some(Err(e)) = param
            .var
            .as_ref()
            .and_then(|v| v.r#type.as_ref())
            .map(check_type_depth)
        {
            errors.push(too_deep(format!("default input '{name}'"), e));
        }
        if let Some(parameter::Behavior::Default(lit)) = &param.behavior
            && let Err(e) = check_literal_depth(lit)
        {
            errors.push(too_deep(format!("default value of input '{name}'"), e));
        }
    }
    for (name, lit) in fixed {
        if let Err(e) = check_literal_depth(lit) {
            errors.push(too_deep(format!("fixed input '{name}'"), e));
        }
    }
    errors
}
