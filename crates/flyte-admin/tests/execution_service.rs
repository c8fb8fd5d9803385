//! The execution service called directly, as the engine and other in-process callers call it:
//! no gRPC request in between. Entities are registered over the API (the setup a user makes);
//! every command under test is a plain Rust call whose effects are read back from the store
//! and from the recording engine.

mod admin_support;
mod launch_support;

use flyte_admin::AdminError;
use flyte_admin::services::executions::{
    CreateExecution, ExecutionService, ExecutionSource, RecoverExecution, RelaunchExecution,
    TerminateExecution, Terminated,
};
use flyte_core::ids::ResourceType;
use flyte_engine::external::{ChildLaunch, child_execution_id};
use flyte_store::{EntityKey, ExecutionKey, NodeExecutionKey};
use flyteidl::admin::{ExecutionMetadata, ExecutionSpec, execution_metadata::ExecutionMode};
use flyteidl::core::{LiteralMap, NodeExecutionIdentifier, WorkflowExecutionIdentifier, node};
use launch_support::{DOMAIN, PROJECT, Server, int_lit, map};

fn entity(resource: ResourceType, name: &str) -> EntityKey {
    EntityKey {
        resource,
        project: PROJECT.into(),
        domain: DOMAIN.into(),
        name: name.into(),
        version: "v1".into(),
    }
}

fn key(name: &str) -> ExecutionKey {
    ExecutionKey {
        project: PROJECT.into(),
        domain: DOMAIN.into(),
        name: name.into(),
    }
}

fn command(name: &str, source: ExecutionSource, inputs: LiteralMap) -> CreateExecution {
    CreateExecution {
        project: PROJECT.into(),
        domain: DOMAIN.into(),
        name: Some(name.into()),
        source,
        inputs,
        spec: ExecutionSpec {
            metadata: Some(ExecutionMetadata {
                principal: "alice".into(),
                ..Default::default()
            }),
            ..Default::default()
        },
        raw_spec: None,
    }
}

/// A server whose task `t`, workflow `wf` and launch plan `wf` (`x: int`, required) are
/// registered at v1, and the service over its state.
async fn setup() -> (Server, ExecutionService) {
    let mut server = launch_support::start().await;
    admin_support::register_all(&mut server.admin, "v1").await;
    let service = ExecutionService::new(server.state.clone());
    (server, service)
}

fn launch_plan() -> ExecutionSource {
    ExecutionSource::LaunchPlan(entity(ResourceType::LaunchPlan, "wf"))
}

#[tokio::test]
async fn creates_from_a_launch_plan_and_hands_it_to_the_engine() {
    let (server, service) = setup().await;
    let id = service
        .create(command("lp-run", launch_plan(), map(&[("x", int_lit(3))])))
        .await
        .unwrap();
    assert_eq!(id.name, "lp-run");
    assert_eq!((id.project.as_str(), id.domain.as_str()), (PROJECT, DOMAIN));

    let record = server
        .state
        .store
        .get_execution(&key("lp-run"))
        .await
        .unwrap();
    assert_eq!(record.phase, "QUEUED");
    assert_eq!(
        record.launch_plan,
        Some(entity(ResourceType::LaunchPlan, "wf"))
    );
    assert_eq!(record.workflow, Some(entity(ResourceType::Workflow, "wf")));
    assert_eq!(record.task, None);
    assert_eq!(record.principal, "alice");

    let started = server.launcher.started("lp-run");
    assert_eq!(started.inputs, map(&[("x", int_lit(3))]));
    assert_eq!(started.launch_plan.as_ref().unwrap().name, "wf");
    assert_eq!(started.principal, "alice");
    // The stored spec names what ran, as CreateExecution's would.
    let mut server = server;
    let execution = server.get("lp-run").await;
    let spec = execution.spec.unwrap();
    assert_eq!(spec.launch_plan.unwrap().name, "wf");
}

#[tokio::test]
async fn a_generated_name_when_none_is_given() {
    let (server, service) = setup().await;
    let mut cmd = command("unused", launch_plan(), map(&[("x", int_lit(1))]));
    cmd.name = None;
    let id = service.create(cmd).await.unwrap();
    assert_eq!(id.name.len(), 20, "{}", id.name);
    assert!(id.name.starts_with('a'), "{}", id.name);
    server
        .state
        .store
        .get_execution(&key(&id.name))
        .await
        .unwrap();
}

#[tokio::test]
async fn creates_from_a_task_through_its_single_task_launch_plan() {
    let (server, service) = setup().await;
    let task = entity(ResourceType::Task, "t");
    service
        .create(command(
            "task-run",
            ExecutionSource::Task(task.clone()),
            map(&[("a", int_lit(7))]),
        ))
        .await
        .unwrap();
    let record = server
        .state
        .store
        .get_execution(&key("task-run"))
        .await
        .unwrap();
    assert_eq!(record.task, Some(task));
    assert_eq!(
        record.launch_plan,
        Some(entity(ResourceType::LaunchPlan, ".flytegen.t"))
    );
    let started = server.launcher.started("task-run");
    assert_eq!(started.inputs, map(&[("a", int_lit(7))]));
    assert_eq!(started.launch_plan.unwrap().name, ".flytegen.t");
    // The generated workflow runs the task in one node.
    let template = started.compiled.primary.unwrap().template.unwrap();
    let task_nodes: Vec<_> = template
        .nodes
        .iter()
        .filter_map(|n| match &n.target {
            Some(node::Target::TaskNode(t)) => Some(t),
            _ => None,
        })
        .collect();
    assert_eq!(task_nodes.len(), 1);
}

#[tokio::test]
async fn refuses_bad_commands_with_their_code() {
    let (server, service) = setup().await;
    let missing_input = service
        .create(command("no-x", launch_plan(), LiteralMap::default()))
        .await
        .unwrap_err();
    assert!(
        matches!(&missing_input, AdminError::InvalidArgument(m) if m.contains("missing required input(s): x")),
        "{missing_input:?}"
    );
    let unknown = service
        .create(command(
            "nope",
            ExecutionSource::LaunchPlan(entity(ResourceType::LaunchPlan, "nope")),
            LiteralMap::default(),
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(&unknown, AdminError::NotFound(m) if m.contains("register it before executing it")),
        "{unknown:?}"
    );
    let bad_name = service
        .create(command("9lives", launch_plan(), map(&[("x", int_lit(1))])))
        .await
        .unwrap_err();
    assert!(
        matches!(&bad_name, AdminError::InvalidArgument(m) if m.contains("invalid execution name")),
        "{bad_name:?}"
    );
    let mut no_project = command("np", launch_plan(), map(&[("x", int_lit(1))]));
    no_project.project.clear();
    assert!(matches!(
        service.create(no_project).await.unwrap_err(),
        AdminError::InvalidArgument(_)
    ));

    service
        .create(command("twice", launch_plan(), map(&[("x", int_lit(1))])))
        .await
        .unwrap();
    let again = service
        .create(command("twice", launch_plan(), map(&[("x", int_lit(2))])))
        .await
        .unwrap_err();
    assert!(matches!(again, AdminError::AlreadyExists(_)), "{again:?}");
    // Nothing refused reached the engine; the duplicate did not start a second time.
    let started: Vec<String> = server
        .launcher
        .started
        .lock()
        .unwrap()
        .iter()
        .map(|r| r.id.name.clone())
        .collect();
    assert_eq!(started, vec!["twice".to_string()]);
}

#[tokio::test]
async fn terminate_aborts_once_and_then_reports_it_finished() {
    let (server, service) = setup().await;
    service
        .create(command("to-stop", launch_plan(), map(&[("x", int_lit(1))])))
        .await
        .unwrap();
    let terminate = || TerminateExecution {
        id: key("to-stop"),
        cause: "not needed".into(),
    };
    assert_eq!(
        service.terminate(terminate()).await.unwrap(),
        Terminated::Aborting
    );
    {
        let aborted = server.launcher.aborted.lock().unwrap();
        assert_eq!(aborted.len(), 1);
        assert_eq!(aborted[0].0.name, "to-stop");
        assert_eq!(aborted[0].1, "not needed");
    }
    // The recording engine was not running it: the service finished it as ABORTED.
    let record = server
        .state
        .store
        .get_execution(&key("to-stop"))
        .await
        .unwrap();
    assert_eq!(record.phase, "ABORTED");
    match service.terminate(terminate()).await.unwrap() {
        Terminated::AlreadyFinished { phase, message } => {
            assert_eq!(phase, "ABORTED");
            assert!(message.contains("already terminated"), "{message}");
        }
        other => panic!("expected AlreadyFinished, got {other:?}"),
    }
    let missing = service
        .terminate(TerminateExecution {
            id: key("never-created"),
            cause: String::new(),
        })
        .await
        .unwrap_err();
    assert!(matches!(missing, AdminError::NotFound(_)), "{missing:?}");
}

#[tokio::test]
async fn launches_a_child_for_a_launch_plan_node_once() {
    let (server, service) = setup().await;
    service
        .create(command("parent", launch_plan(), map(&[("x", int_lit(1))])))
        .await
        .unwrap();
    let node = NodeExecutionIdentifier {
        node_id: "n1".into(),
        execution_id: Some(WorkflowExecutionIdentifier {
            project: PROJECT.into(),
            domain: DOMAIN.into(),
            name: "parent".into(),
            ..Default::default()
        }),
    };
    let launch = ChildLaunch {
        parent: node.clone(),
        attempt: 0,
        launch_plan: admin_support::id(flyteidl::core::ResourceType::LaunchPlan, "wf", "v1"),
        inputs: map(&[("x", int_lit(5))]),
        labels: [("team".to_string(), "ml".to_string())].into(),
        service_account: "parent-runner".into(),
        ..Default::default()
    };
    let child = service.launch_child(launch.clone()).await.unwrap();
    assert_eq!(child, child_execution_id(&node, 0));

    let record = server
        .state
        .store
        .get_execution(&key(&child.name))
        .await
        .unwrap();
    assert_eq!(record.mode, ExecutionMode::ChildWorkflow as i32);
    assert_eq!(
        record.parent,
        Some(NodeExecutionKey {
            execution: key("parent"),
            node_id: "n1".into(),
        })
    );
    // The parent's principal, the node's inputs and labels.
    assert_eq!(record.principal, "alice");
    let started = server.launcher.started(&child.name);
    assert_eq!(started.inputs, map(&[("x", int_lit(5))]));
    assert_eq!(started.labels.get("team").map(String::as_str), Some("ml"));
    // The parent's service account (resolved from its launch plan, not in its spec): the
    // child's pods run as it (propeller passes the parent's security context on).
    assert_eq!(started.service_account, "parent-runner");

    // The node retried after a crash: the same child, not started again.
    assert_eq!(service.launch_child(launch).await.unwrap(), child);
    let starts = server
        .launcher
        .started
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.id.name == child.name)
        .count();
    assert_eq!(starts, 1);
}

#[tokio::test]
async fn relaunch_and_recover_run_what_the_original_ran() {
    let (mut server, service) = setup().await;
    service
        .create(command(
            "orig",
            ExecutionSource::Task(entity(ResourceType::Task, "t")),
            map(&[("a", int_lit(4))]),
        ))
        .await
        .unwrap();
    // Still QUEUED: recovering it would race it.
    let running = service
        .recover(RecoverExecution {
            original: key("orig"),
            name: Some("too-early".into()),
            parent_node_execution: None,
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&running, AdminError::FailedPrecondition(m) if m.contains("cannot recover a running execution")),
        "{running:?}"
    );

    let relaunched = service
        .relaunch(RelaunchExecution {
            original: key("orig"),
            name: Some("again".into()),
            overwrite_cache: true,
        })
        .await
        .unwrap();
    assert_eq!(relaunched.name, "again");
    let record = server
        .state
        .store
        .get_execution(&key("again"))
        .await
        .unwrap();
    assert_eq!(record.mode, ExecutionMode::Relaunch as i32);
    assert_eq!(record.task, Some(entity(ResourceType::Task, "t")));
    let started = server.launcher.started("again");
    assert_eq!(started.inputs, map(&[("a", int_lit(4))]));
    assert!(started.overwrite_cache);

    server
        .finish(
            "orig",
            flyteidl::core::workflow_execution::Phase::Failed,
            None,
        )
        .await;
    service
        .recover(RecoverExecution {
            original: key("orig"),
            name: Some("recovered".into()),
            parent_node_execution: None,
        })
        .await
        .unwrap();
    let started = server.launcher.started("recovered");
    assert_eq!(started.recover_from.unwrap().name, "orig");
    assert_eq!(started.inputs, map(&[("a", int_lit(4))]));
}

/// The task node ids of the workflow an execution was started with (the compiled template
/// also holds `start-node` and `end-node`).
fn started_nodes(server: &Server, name: &str) -> Vec<String> {
    let started = server.launcher.started(name);
    let template = started.compiled.primary.unwrap().template.unwrap();
    template
        .nodes
        .into_iter()
        .map(|n| n.id)
        .filter(|id| !id.ends_with("-node"))
        .collect()
}

/// Launch plans and workflows are read once and kept by their full id (the service caches
/// them: they never change once registered): each version runs its own workflow, however
/// the creations of the versions interleave.
#[tokio::test]
async fn each_version_runs_its_own_workflow_when_read_again() {
    let (mut server, service) = setup().await;
    let v2 = |resource| EntityKey {
        version: "v2".into(),
        ..entity(resource, "wf")
    };
    // v2 of launch plan `wf` is not registered yet: NOT_FOUND, and nothing is kept of that.
    let err = service
        .create(command(
            "early",
            ExecutionSource::LaunchPlan(v2(ResourceType::LaunchPlan)),
            map(&[("x", int_lit(1))]),
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, AdminError::NotFound(_)), "{err:?}");

    service
        .create(command("one-a", launch_plan(), map(&[("x", int_lit(1))])))
        .await
        .unwrap();
    // v2: the same names, a workflow whose node is `m0`.
    let task = admin_support::task_request("t", "v2");
    let task_id = task.id.clone().unwrap();
    server.admin.create_task(task).await.unwrap();
    let mut wf = admin_support::workflow_request("wf", "v2", &task_id, "m0");
    let template = wf.spec.as_mut().unwrap().template.as_mut().unwrap();
    template.nodes[0].id = "m0".into();
    let wf_id = wf.id.clone().unwrap();
    server.admin.create_workflow(wf).await.unwrap();
    server
        .admin
        .create_launch_plan(admin_support::launch_plan_request("wf", "v2", &wf_id))
        .await
        .unwrap();

    for (name, source) in [
        (
            "two-a",
            ExecutionSource::LaunchPlan(v2(ResourceType::LaunchPlan)),
        ),
        ("one-b", launch_plan()),
        (
            "two-b",
            ExecutionSource::LaunchPlan(v2(ResourceType::LaunchPlan)),
        ),
    ] {
        service
            .create(command(name, source, map(&[("x", int_lit(2))])))
            .await
            .unwrap();
    }
    assert_eq!(started_nodes(&server, "one-a"), ["n0"]);
    assert_eq!(started_nodes(&server, "one-b"), ["n0"]);
    assert_eq!(started_nodes(&server, "two-a"), ["m0"]);
    assert_eq!(started_nodes(&server, "two-b"), ["m0"]);
    let record = server
        .state
        .store
        .get_execution(&key("two-b"))
        .await
        .unwrap();
    assert_eq!(record.workflow, Some(v2(ResourceType::Workflow)));
}
