//! `flyte-rs launch`, `terminate`, `relaunch`, `recover`, `launchplan activate|deactivate`.

use std::collections::BTreeMap;
use std::process::ExitCode;

use flyteidl::admin::{
    self, ExecutionCreateRequest, ExecutionMetadata, ExecutionRecoverRequest,
    ExecutionRelaunchRequest, ExecutionSpec, ExecutionTerminateRequest, LaunchPlanUpdateRequest,
    ObjectGetRequest,
};
use flyteidl::core::{self, ResourceType, WorkflowExecutionIdentifier};
use serde_json::json;

use crate::cli::{Common, LaunchArgs, LaunchCommand, LaunchPlanCommand};
use crate::client::Client;
use crate::error::{CliError, CliResult};
use crate::literals::{self, InputSpec};
use crate::output::{Format, print_data};

pub async fn launch(
    client: &mut Client,
    what: LaunchCommand,
    common: &Common,
) -> CliResult<ExitCode> {
    let (kind, args) = match what {
        LaunchCommand::Launchplan(args) => (ResourceType::LaunchPlan, args),
        LaunchCommand::Task(args) => (ResourceType::Task, args),
    };
    let id = client
        .resolve(kind, &args.name, args.version.as_deref())
        .await?;
    let specs = input_specs(client, kind, &id).await?;
    let inputs = parse_inputs(&specs, &args)?;
    let created = client
        .admin
        .create_execution(ExecutionCreateRequest {
            project: client.project.clone(),
            domain: client.domain.clone(),
            name: args.execution_name.clone().unwrap_or_default(),
            spec: Some(ExecutionSpec {
                launch_plan: Some(id.clone()),
                metadata: Some(ExecutionMetadata {
                    mode: admin::execution_metadata::ExecutionMode::Manual as i32,
                    principal: "flyte-rs".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            inputs: Some(inputs),
            ..Default::default()
        })
        .await
        .map_err(CliError::rpc(format!(
            "cannot launch {} {} ({})",
            crate::client::kind_name(kind),
            id.name,
            id.version
        )))?
        .into_inner();
    let exec_id = created
        .id
        .ok_or_else(|| CliError::Io("the server created an execution but gave no id".into()))?;
    announce(client, "launched", &exec_id, common)?;
    if args.watch {
        return crate::watch::watch(client, &exec_id.name, common).await;
    }
    Ok(ExitCode::SUCCESS)
}

fn parse_inputs(
    specs: &BTreeMap<String, InputSpec>,
    args: &LaunchArgs,
) -> CliResult<core::LiteralMap> {
    let from_file = match &args.inputs_file {
        Some(path) => literals::read_inputs_file(path)?,
        None => BTreeMap::new(),
    };
    let flags = args
        .inputs
        .iter()
        .map(|f| literals::split_flag(f))
        .collect::<CliResult<Vec<_>>>()?;
    literals::build_inputs(specs, from_file, &flags)
}

/// The inputs a launch plan or task takes.
async fn input_specs(
    client: &mut Client,
    kind: ResourceType,
    id: &core::Identifier,
) -> CliResult<BTreeMap<String, InputSpec>> {
    let request = ObjectGetRequest {
        id: Some(id.clone()),
    };
    if kind == ResourceType::Task {
        let task = client
            .admin
            .get_task(request)
            .await
            .map_err(CliError::rpc(format!("cannot get task {}", id.name)))?
            .into_inner();
        let vars = task
            .closure
            .and_then(|c| c.compiled_task)
            .and_then(|c| c.template)
            .and_then(|t| t.interface)
            .and_then(|i| i.inputs)
            .map(|v| v.variables)
            .unwrap_or_default();
        return Ok(vars
            .into_iter()
            .filter_map(|(name, var)| {
                Some((
                    name,
                    InputSpec {
                        ty: var.r#type?,
                        default: None,
                        required: true,
                    },
                ))
            })
            .collect());
    }
    let lp = client
        .admin
        .get_launch_plan(request)
        .await
        .map_err(CliError::rpc(format!("cannot get launch plan {}", id.name)))?
        .into_inner();
    let params = lp
        .closure
        .and_then(|c| c.expected_inputs)
        .map(|p| p.parameters)
        .unwrap_or_default();
    Ok(params
        .into_iter()
        .filter_map(|(name, p)| {
            let ty = p.var?.r#type?;
            let (default, required) = match p.behavior {
                Some(core::parameter::Behavior::Default(lit)) => (Some(lit), false),
                Some(core::parameter::Behavior::Required(r)) => (None, r),
                _ => (None, false),
            };
            Some((
                name,
                InputSpec {
                    ty,
                    default,
                    required,
                },
            ))
        })
        .collect())
}

/// Prints a new execution: its name and console link, or the id as JSON/YAML.
fn announce(
    client: &Client,
    verb: &str,
    id: &WorkflowExecutionIdentifier,
    common: &Common,
) -> CliResult<()> {
    let url = client
        .config
        .execution_url(&id.project, &id.domain, &id.name);
    match common.output {
        Format::Table => {
            outln!(
                "{verb} execution {} in {}/{}",
                id.name,
                id.project,
                id.domain
            );
            outln!("console: {url}");
            Ok(())
        }
        format => print_data(
            format,
            &json!({"project": id.project, "domain": id.domain, "name": id.name, "console": url}),
        ),
    }
}

pub async fn terminate(
    client: &mut Client,
    executions: &[String],
    cause: &str,
    common: &Common,
) -> CliResult<()> {
    let mut done = Vec::new();
    for name in executions {
        client
            .admin
            .terminate_execution(ExecutionTerminateRequest {
                id: Some(client.execution_id(name)),
                cause: cause.to_string(),
            })
            .await
            .map_err(CliError::rpc(format!("cannot terminate execution {name}")))?;
        if common.output == Format::Table {
            outln!("terminated {name}");
        }
        done.push(json!({"project": client.project, "domain": client.domain, "name": name}));
    }
    if common.output != Format::Table {
        print_data(common.output, &done)?;
    }
    Ok(())
}

pub async fn relaunch(
    client: &mut Client,
    execution: &str,
    name: &str,
    watch: bool,
    recover: bool,
    common: &Common,
) -> CliResult<ExitCode> {
    let id = Some(client.execution_id(execution));
    let response = if recover {
        client
            .admin
            .recover_execution(ExecutionRecoverRequest {
                id,
                name: name.to_string(),
                metadata: None,
            })
            .await
            .map_err(CliError::rpc(format!(
                "cannot recover execution {execution}"
            )))?
    } else {
        client
            .admin
            .relaunch_execution(ExecutionRelaunchRequest {
                id,
                name: name.to_string(),
                overwrite_cache: false,
            })
            .await
            .map_err(CliError::rpc(format!(
                "cannot relaunch execution {execution}"
            )))?
    };
    let new_id = response
        .into_inner()
        .id
        .ok_or_else(|| CliError::Io("the server created an execution but gave no id".into()))?;
    announce(
        client,
        if recover {
            "recovered as"
        } else {
            "relaunched as"
        },
        &new_id,
        common,
    )?;
    if watch {
        return crate::watch::watch(client, &new_id.name, common).await;
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn launch_plan_state(
    client: &mut Client,
    what: LaunchPlanCommand,
    common: &Common,
) -> CliResult<()> {
    let (name, version, state) = match what {
        LaunchPlanCommand::Activate { name, version } => {
            (name, version, admin::LaunchPlanState::Active)
        }
        LaunchPlanCommand::Deactivate { name, version } => {
            (name, version, admin::LaunchPlanState::Inactive)
        }
    };
    let id = client
        .resolve(ResourceType::LaunchPlan, &name, version.as_deref())
        .await?;
    client
        .admin
        .update_launch_plan(LaunchPlanUpdateRequest {
            id: Some(id.clone()),
            state: state as i32,
        })
        .await
        .map_err(CliError::rpc(format!(
            "cannot change the state of launch plan {name} ({})",
            id.version
        )))?;
    let state_name = crate::get::lp_state(state as i32);
    match common.output {
        Format::Table => outln!("launch plan {name} version {} is {state_name}", id.version),
        format => print_data(
            format,
            &json!({"name": name, "version": id.version, "state": state_name}),
        )?,
    }
    Ok(())
}
