//! `flyte-rs get ...`.

use std::collections::BTreeMap;

use flyteidl::admin::{
    self, NamedEntityIdentifierListRequest, ObjectGetRequest, ProjectListRequest,
    ResourceListRequest, ResourceListRequest as Rlr, WorkflowExecutionGetDataRequest,
};
use flyteidl::core::{self, Identifier, ParameterMap, ResourceType, TypedInterface, VariableMap};
use serde_json::{Value, json};

use crate::cli::{Common, EntityArgs, GetCommand, Paging};
use crate::client::{Client, kind_name, newest_first};
use crate::error::{CliError, CliResult};
use crate::literals::{map_json, to_json, type_name};
use crate::output::{
    Format, cell, phase_styled, print_data, print_fields, print_table, proto_duration, timestamp,
};

pub async fn run(client: &mut Client, what: GetCommand, common: &Common) -> CliResult<()> {
    match what {
        GetCommand::Project => projects(client, common).await,
        GetCommand::Workflow(args) => entity(client, ResourceType::Workflow, args, common).await,
        GetCommand::Task(args) => entity(client, ResourceType::Task, args, common).await,
        GetCommand::Launchplan(args) => {
            entity(client, ResourceType::LaunchPlan, args, common).await
        }
        GetCommand::Schedule { name } => {
            crate::schedules::run(client, name.as_deref(), common).await
        }
        GetCommand::Execution {
            name: Some(name), ..
        } => execution(client, &name, common).await,
        GetCommand::Execution {
            name: None,
            phase,
            launchplan,
            paging,
        } => executions(client, phase, launchplan, paging, common).await,
    }
}

fn more(token: &str) {
    if !token.is_empty() {
        eprintln!("(more: add --token {token})");
    }
}

async fn projects(client: &mut Client, common: &Common) -> CliResult<()> {
    let list = client
        .admin
        .list_projects(ProjectListRequest {
            limit: 1000,
            ..Default::default()
        })
        .await
        .map_err(CliError::rpc("cannot list projects"))?
        .into_inner();
    if common.output != Format::Table {
        return print_data(common.output, &list.projects);
    }
    let rows = list
        .projects
        .iter()
        .map(|p| {
            vec![
                p.id.clone(),
                p.name.clone(),
                p.domains
                    .iter()
                    .map(|d| d.id.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
                p.description.clone(),
            ]
        })
        .collect();
    print_table(&["ID", "NAME", "DOMAINS", "DESCRIPTION"], rows);
    Ok(())
}

fn filters(parts: &[String]) -> String {
    parts
        .iter()
        .filter(|p| !p.is_empty())
        .cloned()
        .collect::<Vec<_>>()
        .join("+")
}

async fn entity(
    client: &mut Client,
    kind: ResourceType,
    args: EntityArgs,
    common: &Common,
) -> CliResult<()> {
    let Some(name) = args.name.clone() else {
        return entity_names(client, kind, &args.paging, common).await;
    };
    if args.version.is_some() || args.latest {
        let id = client.resolve(kind, &name, args.version.as_deref()).await?;
        return entity_detail(client, kind, id, common).await;
    }
    let request = ResourceListRequest {
        id: Some(client.named(&name)),
        limit: args.paging.limit,
        token: args.paging.token.clone(),
        filters: args.paging.filter.clone(),
        sort_by: Some(newest_first()),
    };
    let context = format!("cannot list the versions of {} {name}", kind_name(kind));
    let (rows, token, data): (Vec<Vec<String>>, String, Value) = match kind {
        ResourceType::Task => {
            let l = client
                .admin
                .list_tasks(request)
                .await
                .map_err(CliError::rpc(context))?
                .into_inner();
            let (rows, data) = listed(&l.tasks, |t| {
                let closure = t.closure.as_ref();
                vec![
                    version(&t.id),
                    timestamp(closure.and_then(|c| c.created_at.as_ref())),
                ]
            });
            (rows, l.token, data)
        }
        ResourceType::Workflow => {
            let l = client
                .admin
                .list_workflows(request)
                .await
                .map_err(CliError::rpc(context))?
                .into_inner();
            let (rows, data) = listed(&l.workflows, |w| {
                let closure = w.closure.as_ref();
                vec![
                    version(&w.id),
                    timestamp(closure.and_then(|c| c.created_at.as_ref())),
                ]
            });
            (rows, l.token, data)
        }
        _ => {
            let l = client
                .admin
                .list_launch_plans(request)
                .await
                .map_err(CliError::rpc(context))?
                .into_inner();
            let (rows, data) = listed(&l.launch_plans, |lp| {
                let closure = lp.closure.as_ref();
                vec![
                    version(&lp.id),
                    lp_state(closure.map_or(0, |c| c.state)).to_string(),
                    timestamp(closure.and_then(|c| c.created_at.as_ref())),
                ]
            });
            (rows, l.token, data)
        }
    };
    if rows.is_empty() {
        return Err(CliError::Usage(format!(
            "no {} named {name} in {}/{}",
            kind_name(kind),
            client.project,
            client.domain
        )));
    }
    if common.output != Format::Table {
        print_data(common.output, &data)?;
    } else if kind == ResourceType::LaunchPlan {
        print_table(&["VERSION", "STATE", "CREATED"], rows);
        if let Some(schedule) = crate::schedules::one(client, &name).await? {
            outln!("");
            crate::schedules::print(&schedule);
        }
    } else {
        print_table(&["VERSION", "CREATED"], rows);
    }
    more(&token);
    Ok(())
}

/// Table rows of listed entities, and the same entities as data for `-o json|yaml`.
fn listed<T: serde::Serialize>(
    items: &[T],
    row: impl Fn(&T) -> Vec<String>,
) -> (Vec<Vec<String>>, Value) {
    let rows = items.iter().map(row).collect();
    (rows, serde_json::to_value(items).unwrap_or_default())
}

fn version(id: &Option<Identifier>) -> String {
    id.as_ref().map(|i| i.version.clone()).unwrap_or_default()
}

pub fn lp_state(state: i32) -> &'static str {
    match admin::LaunchPlanState::try_from(state) {
        Ok(admin::LaunchPlanState::Active) => "ACTIVE",
        _ => "INACTIVE",
    }
}

async fn entity_names(
    client: &mut Client,
    kind: ResourceType,
    paging: &Paging,
    common: &Common,
) -> CliResult<()> {
    let request = NamedEntityIdentifierListRequest {
        project: client.project.clone(),
        domain: client.domain.clone(),
        limit: paging.limit,
        token: paging.token.clone(),
        filters: paging.filter.clone(),
        sort_by: Some(admin::Sort {
            key: "name".into(),
            direction: admin::sort::Direction::Ascending as i32,
        }),
        ..Default::default()
    };
    let context = format!("cannot list {}s", kind_name(kind));
    let list = match kind {
        ResourceType::Task => client.admin.list_task_ids(request).await,
        ResourceType::Workflow => client.admin.list_workflow_ids(request).await,
        _ => client.admin.list_launch_plan_ids(request).await,
    }
    .map_err(CliError::rpc(context))?
    .into_inner();
    if common.output != Format::Table {
        return print_data(common.output, &list.entities);
    }
    print_table(
        &["NAME"],
        list.entities.iter().map(|e| vec![e.name.clone()]).collect(),
    );
    more(&list.token);
    Ok(())
}

/// Input rows of an interface: name, type, and default or "required".
fn variable_rows(vars: Option<&VariableMap>) -> Vec<Vec<String>> {
    vars.map(|v| {
        v.variables
            .iter()
            .map(|(name, var)| {
                vec![
                    name.clone(),
                    var.r#type.as_ref().map(type_name).unwrap_or_default(),
                    var.description.clone(),
                ]
            })
            .collect()
    })
    .unwrap_or_default()
}

fn parameter_rows(
    params: Option<&ParameterMap>,
    fixed: Option<&core::LiteralMap>,
) -> Vec<Vec<String>> {
    let mut rows: Vec<Vec<String>> = params
        .map(|p| {
            p.parameters
                .iter()
                .map(|(name, param)| {
                    let ty = param
                        .var
                        .as_ref()
                        .and_then(|v| v.r#type.as_ref())
                        .map(type_name)
                        .unwrap_or_default();
                    let default = match &param.behavior {
                        Some(core::parameter::Behavior::Default(lit)) => cell(&to_json(lit)),
                        Some(core::parameter::Behavior::Required(true)) => "(required)".into(),
                        _ => String::new(),
                    };
                    vec![name.clone(), ty, default]
                })
                .collect()
        })
        .unwrap_or_default();
    if let Some(fixed) = fixed {
        for (name, lit) in &fixed.literals {
            rows.push(vec![name.clone(), "(fixed)".into(), cell(&to_json(lit))]);
        }
    }
    rows
}

async fn entity_detail(
    client: &mut Client,
    kind: ResourceType,
    id: Identifier,
    common: &Common,
) -> CliResult<()> {
    let request = ObjectGetRequest {
        id: Some(id.clone()),
    };
    let context = format!(
        "cannot get {} {} version {}",
        kind_name(kind),
        id.name,
        id.version
    );
    match kind {
        ResourceType::Task => {
            let task = client
                .admin
                .get_task(request)
                .await
                .map_err(CliError::rpc(context))?
                .into_inner();
            if common.output != Format::Table {
                return print_data(common.output, &task);
            }
            let template = task
                .closure
                .as_ref()
                .and_then(|c| c.compiled_task.as_ref())
                .and_then(|c| c.template.as_ref());
            print_fields(&[
                ("Task", id.name.clone()),
                ("Version", id.version.clone()),
                (
                    "Type",
                    template.map(|t| t.r#type.clone()).unwrap_or_default(),
                ),
                (
                    "Created",
                    timestamp(task.closure.as_ref().and_then(|c| c.created_at.as_ref())),
                ),
            ]);
            print_interface(template.and_then(|t| t.interface.as_ref()));
        }
        ResourceType::Workflow => {
            let wf = client
                .admin
                .get_workflow(request)
                .await
                .map_err(CliError::rpc(context))?
                .into_inner();
            if common.output != Format::Table {
                return print_data(common.output, &wf);
            }
            let template = wf
                .closure
                .as_ref()
                .and_then(|c| c.compiled_workflow.as_ref())
                .and_then(|c| c.primary.as_ref())
                .and_then(|p| p.template.as_ref());
            print_fields(&[
                ("Workflow", id.name.clone()),
                ("Version", id.version.clone()),
                ("Nodes", template.map_or(0, |t| t.nodes.len()).to_string()),
                (
                    "Created",
                    timestamp(wf.closure.as_ref().and_then(|c| c.created_at.as_ref())),
                ),
            ]);
            print_interface(template.and_then(|t| t.interface.as_ref()));
        }
        _ => {
            let lp = client
                .admin
                .get_launch_plan(request)
                .await
                .map_err(CliError::rpc(context))?
                .into_inner();
            if common.output != Format::Table {
                return print_data(common.output, &lp);
            }
            let closure = lp.closure.as_ref();
            let spec = lp.spec.as_ref();
            print_fields(&[
                ("Launch plan", id.name.clone()),
                ("Version", id.version.clone()),
                (
                    "State",
                    lp_state(closure.map_or(0, |c| c.state)).to_string(),
                ),
                (
                    "Workflow",
                    spec.and_then(|s| s.workflow_id.as_ref())
                        .map(|w| format!("{} ({})", w.name, w.version))
                        .unwrap_or_default(),
                ),
                (
                    "Created",
                    timestamp(closure.and_then(|c| c.created_at.as_ref())),
                ),
            ]);
            // The active version's schedule (another version's would mislead).
            if lp_state(closure.map_or(0, |c| c.state)) == "ACTIVE"
                && let Some(schedule) = crate::schedules::one(client, &id.name).await?
                && schedule.version == id.version
            {
                crate::schedules::print(&schedule);
            }
            outln!("");
            print_table(
                &["INPUT", "TYPE", "DEFAULT"],
                parameter_rows(
                    closure.and_then(|c| c.expected_inputs.as_ref()),
                    spec.and_then(|s| s.fixed_inputs.as_ref()),
                ),
            );
            outln!("");
            print_table(
                &["OUTPUT", "TYPE", "DESCRIPTION"],
                variable_rows(closure.and_then(|c| c.expected_outputs.as_ref())),
            );
        }
    }
    Ok(())
}

fn print_interface(interface: Option<&TypedInterface>) {
    outln!("");
    print_table(
        &["INPUT", "TYPE", "DESCRIPTION"],
        variable_rows(interface.and_then(|i| i.inputs.as_ref())),
    );
    outln!("");
    print_table(
        &["OUTPUT", "TYPE", "DESCRIPTION"],
        variable_rows(interface.and_then(|i| i.outputs.as_ref())),
    );
}

pub fn execution_phase(phase: i32) -> &'static str {
    core::workflow_execution::Phase::try_from(phase)
        .map(|p| p.as_str_name())
        .unwrap_or("UNDEFINED")
}

pub fn node_phase(phase: i32) -> &'static str {
    core::node_execution::Phase::try_from(phase)
        .map(|p| p.as_str_name())
        .unwrap_or("UNDEFINED")
}

async fn executions(
    client: &mut Client,
    phase: Option<String>,
    launchplan: Option<String>,
    paging: Paging,
    common: &Common,
) -> CliResult<()> {
    let mut parts = vec![paging.filter.clone()];
    if let Some(phase) = phase {
        let upper = phase.to_ascii_uppercase();
        if core::workflow_execution::Phase::from_str_name(&upper).is_none() {
            return Err(CliError::Usage(format!(
                "--phase {phase}: not a phase (QUEUED, RUNNING, SUCCEEDED, FAILED, ABORTED, TIMED_OUT, ...)"
            )));
        }
        parts.push(format!("eq(phase,{upper})"));
    }
    if let Some(lp) = launchplan {
        parts.push(format!("eq(launch_plan.name,{lp})"));
    }
    let list = client
        .admin
        .list_executions(Rlr {
            id: Some(client.named("")),
            limit: paging.limit,
            token: paging.token.clone(),
            filters: filters(&parts),
            sort_by: Some(newest_first()),
        })
        .await
        .map_err(CliError::rpc("cannot list executions"))?
        .into_inner();
    if common.output != Format::Table {
        print_data(common.output, &list.executions)?;
        more(&list.token);
        return Ok(());
    }
    let rows = list
        .executions
        .iter()
        .map(|e| {
            let closure = e.closure.as_ref();
            let lp = e.spec.as_ref().and_then(|s| s.launch_plan.as_ref());
            vec![
                e.id.as_ref().map(|i| i.name.clone()).unwrap_or_default(),
                lp.map(|l| l.name.clone()).unwrap_or_default(),
                lp.map(|l| l.version.clone()).unwrap_or_default(),
                // No colour inside tables: escape codes would count in the column widths.
                execution_phase(closure.map_or(0, |c| c.phase)).to_string(),
                timestamp(closure.and_then(|c| c.started_at.as_ref().or(c.created_at.as_ref()))),
                proto_duration(closure.and_then(|c| c.duration.as_ref())),
            ]
        })
        .collect();
    print_table(
        &[
            "NAME",
            "LAUNCH PLAN",
            "VERSION",
            "PHASE",
            "STARTED",
            "DURATION",
        ],
        rows,
    );
    more(&list.token);
    Ok(())
}

/// The error of a failed execution, if any: its message.
pub fn execution_error(e: &admin::Execution) -> Option<String> {
    match e.closure.as_ref()?.output_result.as_ref()? {
        admin::execution_closure::OutputResult::Error(err) => Some(err.message.clone()),
        admin::execution_closure::OutputResult::AbortMetadata(a) => {
            Some(format!("aborted: {}", a.cause))
        }
        _ => None,
    }
}

async fn execution(client: &mut Client, name: &str, common: &Common) -> CliResult<()> {
    let exec = client.get_execution(name).await?;
    let id = client.execution_id(name);
    let data = client
        .admin
        .get_execution_data(WorkflowExecutionGetDataRequest {
            id: Some(id.clone()),
        })
        .await
        .map_err(CliError::rpc(format!(
            "cannot get the data of execution {name}"
        )))?
        .into_inner();
    let mut nodes = client.node_executions(&id, "").await?;
    nodes.sort_by_key(|n| {
        let c = n.closure.as_ref();
        let t = c.and_then(|c| c.started_at.as_ref().or(c.created_at.as_ref()));
        (
            t.map(|t| (t.seconds, t.nanos)),
            n.id.as_ref().map(|i| i.node_id.clone()),
        )
    });
    let inputs = data.full_inputs.as_ref().map(map_json).unwrap_or(json!({}));
    let outputs = data
        .full_outputs
        .as_ref()
        .map(map_json)
        .unwrap_or(json!({}));
    if common.output != Format::Table {
        let mut obj = BTreeMap::new();
        obj.insert("execution", serde_json::to_value(&exec).unwrap_or_default());
        obj.insert("inputs", inputs);
        obj.insert("outputs", outputs);
        obj.insert("nodes", serde_json::to_value(&nodes).unwrap_or_default());
        return print_data(common.output, &obj);
    }
    let colour = common.colour();
    let closure = exec.closure.as_ref();
    let lp = exec.spec.as_ref().and_then(|s| s.launch_plan.as_ref());
    let mut fields = vec![
        ("Execution", name.to_string()),
        (
            "Launch plan",
            lp.map(|l| format!("{} ({})", l.name, l.version))
                .unwrap_or_default(),
        ),
        (
            "Phase",
            phase_styled(execution_phase(closure.map_or(0, |c| c.phase)), colour),
        ),
        (
            "Started",
            timestamp(closure.and_then(|c| c.started_at.as_ref())),
        ),
        (
            "Duration",
            proto_duration(closure.and_then(|c| c.duration.as_ref())),
        ),
    ];
    if let Some(err) = execution_error(&exec) {
        fields.push(("Error", err));
    }
    fields.push((
        "Console",
        client
            .config
            .execution_url(&client.project, &client.domain, name),
    ));
    print_fields(&fields);
    outln!("");
    print_table(&["INPUT", "VALUE"], value_rows(&inputs));
    outln!("");
    print_table(&["OUTPUT", "VALUE"], value_rows(&outputs));
    outln!("");
    let rows = nodes
        .iter()
        .filter(|n| !is_marker(n))
        .map(|n| {
            let c = n.closure.as_ref();
            vec![
                n.id.as_ref().map(|i| i.node_id.clone()).unwrap_or_default(),
                node_phase(c.map_or(0, |c| c.phase)).to_string(),
                timestamp(c.and_then(|c| c.started_at.as_ref())),
                proto_duration(c.and_then(|c| c.duration.as_ref())),
            ]
        })
        .collect();
    print_table(&["NODE", "PHASE", "STARTED", "DURATION"], rows);
    Ok(())
}

fn value_rows(map: &Value) -> Vec<Vec<String>> {
    map.as_object()
        .map(|o| o.iter().map(|(k, v)| vec![k.clone(), cell(v)]).collect())
        .unwrap_or_default()
}

/// `start-node` and `end-node`: bookkeeping, not work.
pub fn is_marker(n: &admin::NodeExecution) -> bool {
    n.id.as_ref()
        .is_some_and(|i| i.node_id == "start-node" || i.node_id == "end-node")
}
