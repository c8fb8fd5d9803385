//! RelaunchExecution and RecoverExecution over the real router with SQLite (a recording
//! launcher stands in for the engine), and the engine services the admin provides: child
//! executions of launch-plan nodes and the recovery lookup.

#![allow(deprecated)]

mod admin_support;
mod launch_support;

use flyte_admin::service::admin::EngineServices;
use flyte_engine::external::{
    ChildExecutions, ChildLaunch, ExternalError, RecoveredNode, RecoveryLookup,
};
use flyteidl::admin::execution_metadata::ExecutionMode;
use flyteidl::admin::*;
use flyteidl::core::{
    self, ExecutionError, NodeExecutionIdentifier, ResourceType, workflow_execution::Phase as WP,
};
use flyteidl::event::{self, node_execution_event, workflow_execution_event};
use launch_support::*;
use tonic::Code;

async fn registered() -> (Server, core::Identifier, core::Identifier) {
    let mut s = start().await;
    let (task, _, lp) = admin_support::register_all(&mut s.admin, "v1").await;
    (s, task, lp)
}

fn failed() -> Option<workflow_execution_event::OutputResult> {
    Some(workflow_execution_event::OutputResult::Error(
        ExecutionError {
            code: "USER:Boom".into(),
            message: "boom".into(),
            kind: core::execution_error::ErrorKind::User as i32,
            ..Default::default()
        },
    ))
}

fn metadata(e: &Execution) -> ExecutionMetadata {
    e.spec.as_ref().unwrap().metadata.clone().unwrap()
}

#[tokio::test]
async fn relaunch_starts_the_same_execution_again() {
    let (mut s, task, lp) = registered().await;
    s.admin
        .create_execution(create_request(&lp, "orig", map(&[("x", int_lit(3))])))
        .await
        .unwrap();
    s.finish("orig", WP::Failed, failed()).await;

    let id = s
        .admin
        .relaunch_execution(ExecutionRelaunchRequest {
            id: Some(exec_id("orig")),
            name: "again".into(),
            overwrite_cache: true,
        })
        .await
        .unwrap()
        .into_inner()
        .id
        .unwrap();
    assert_eq!(id, exec_id("again"));
    let again = s.get("again").await;
    let spec = again.spec.clone().unwrap();
    assert_eq!(spec.launch_plan.as_ref(), Some(&lp));
    assert_eq!(spec.labels.unwrap().values["team"], "ml");
    assert!(spec.overwrite_cache);
    let meta = metadata(&again);
    assert_eq!(meta.mode, ExecutionMode::Relaunch as i32);
    assert_eq!(meta.reference_execution, Some(exec_id("orig")));
    assert_eq!(meta.principal, "alice");
    assert_eq!(
        again.closure.unwrap().phase,
        core::workflow_execution::Phase::Queued as i32
    );
    let data = s
        .admin
        .get_execution_data(WorkflowExecutionGetDataRequest {
            id: Some(exec_id("again")),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(data.full_inputs, Some(map(&[("x", int_lit(3))])));
    let started = s.launcher.started("again");
    assert_eq!(started.inputs, map(&[("x", int_lit(3))]));
    assert_eq!(started.recover_from, None);
    assert!(started.overwrite_cache);

    // Without a name: a generated one. Running executions may be relaunched too.
    let generated = s
        .admin
        .relaunch_execution(ExecutionRelaunchRequest {
            id: Some(exec_id("again")),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .id
        .unwrap();
    assert_eq!(generated.name.len(), 20);
    assert_eq!(
        metadata(&s.get(&generated.name).await).reference_execution,
        Some(exec_id("again"))
    );

    // A single-task execution relaunches as one.
    s.admin
        .create_execution(create_request(&task, "single", map(&[("a", int_lit(1))])))
        .await
        .unwrap();
    s.admin
        .relaunch_execution(ExecutionRelaunchRequest {
            id: Some(exec_id("single")),
            name: "single2".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let single2 = s.get("single2").await;
    assert_eq!(
        single2.spec.unwrap().launch_plan.unwrap().resource_type,
        ResourceType::Task as i32
    );

    // Errors: unknown original, taken name, bad name.
    let err = s
        .admin
        .relaunch_execution(ExecutionRelaunchRequest {
            id: Some(exec_id("ghost")),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    let err = s
        .admin
        .relaunch_execution(ExecutionRelaunchRequest {
            id: Some(exec_id("orig")),
            name: "again".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");
    let err = s
        .admin
        .relaunch_execution(ExecutionRelaunchRequest {
            id: Some(exec_id("orig")),
            name: "9bad".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
}

#[tokio::test]
async fn recover_of_a_running_execution_is_refused() {
    let (mut s, _, lp) = registered().await;
    s.admin
        .create_execution(create_request(&lp, "live", map(&[("x", int_lit(1))])))
        .await
        .unwrap();
    for round in 0..2 {
        let err = s
            .admin
            .recover_execution(ExecutionRecoverRequest {
                id: Some(exec_id("live")),
                name: "rec".into(),
                metadata: None,
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
        assert!(
            err.message().contains("cannot recover a running execution"),
            "{}",
            err.message()
        );
        assert!(err.message().contains("live"), "{}", err.message());
        // QUEUED, then RUNNING: both refused.
        if round == 0 {
            s.admin
                .create_workflow_event(wf_event("live", WP::Running, 1, None))
                .await
                .unwrap();
        }
    }
    // Nothing was created.
    let err = s
        .admin
        .get_execution(WorkflowExecutionGetRequest {
            id: Some(exec_id("rec")),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

#[tokio::test]
async fn recover_requests_are_validated() {
    let (mut s, _, lp) = registered().await;
    s.admin
        .create_execution(create_request(&lp, "done", map(&[("x", int_lit(1))])))
        .await
        .unwrap();
    s.finish("done", WP::Failed, failed()).await;

    let mut no_name = exec_id("done");
    no_name.name.clear();
    let cases = [
        (None, "", Code::InvalidArgument, "missing execution id"),
        (
            Some(no_name),
            "",
            Code::InvalidArgument,
            "needs project, domain and name",
        ),
        (
            Some(exec_id("done")),
            "Not_Valid",
            Code::InvalidArgument,
            "invalid execution name",
        ),
        (
            Some(exec_id("ghost")),
            "",
            Code::NotFound,
            "execution flytesnacks/development/ghost not found",
        ),
    ];
    for (id, name, code, message) in cases {
        let err = s
            .admin
            .recover_execution(ExecutionRecoverRequest {
                id,
                name: name.into(),
                metadata: None,
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), code, "{err:?}");
        assert!(err.message().contains(message), "{}", err.message());
    }
}

#[tokio::test]
async fn recover_creates_a_recovered_execution() {
    let (mut s, _, lp) = registered().await;
    s.admin
        .create_execution(create_request(&lp, "orig", map(&[("x", int_lit(4))])))
        .await
        .unwrap();
    s.finish("orig", WP::Failed, failed()).await;

    let id = s
        .admin
        .recover_execution(ExecutionRecoverRequest {
            id: Some(exec_id("orig")),
            name: "rec".into(),
            metadata: None,
        })
        .await
        .unwrap()
        .into_inner()
        .id
        .unwrap();
    assert_eq!(id, exec_id("rec"));
    let rec = s.get("rec").await;
    let meta = metadata(&rec);
    assert_eq!(meta.mode, ExecutionMode::Recovered as i32);
    assert_eq!(meta.reference_execution, Some(exec_id("orig")));
    assert_eq!(rec.spec.unwrap().launch_plan, Some(lp.clone()));
    // The engine is asked to recover from the original, with the same inputs.
    let started = s.launcher.started("rec");
    assert_eq!(started.recover_from, Some(exec_id("orig")));
    assert_eq!(started.inputs, map(&[("x", int_lit(4))]));

    // A succeeded execution can be recovered too (flyteadmin allows it); a generated name.
    s.finish("rec", WP::Succeeded, None).await;
    let again = s
        .admin
        .recover_execution(ExecutionRecoverRequest {
            id: Some(exec_id("rec")),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .id
        .unwrap();
    assert_eq!(
        s.launcher.started(&again.name).recover_from,
        Some(exec_id("rec"))
    );
}

fn launch(parent: &str, node: &str, attempt: u32, lp: &core::Identifier, x: i64) -> ChildLaunch {
    ChildLaunch {
        parent: NodeExecutionIdentifier {
            node_id: node.into(),
            execution_id: Some(exec_id(parent)),
        },
        attempt,
        launch_plan: lp.clone(),
        inputs: map(&[("x", int_lit(x))]),
        principal: "alice".into(),
        envs: [("K".to_string(), "V".to_string())].into(),
        max_parallelism: 3,
        ..Default::default()
    }
}

#[tokio::test]
async fn child_executions_are_created_once_and_followed() {
    let (mut s, _, lp) = registered().await;
    s.admin
        .create_execution(create_request(&lp, "parent", map(&[("x", int_lit(1))])))
        .await
        .unwrap();
    let services = EngineServices::new(s.state.clone());

    // Created with propeller's deterministic name; a second call is the same child.
    let child = services
        .create_child(launch("parent", "n1", 0, &lp, 5))
        .await
        .unwrap();
    assert_eq!(child, exec_id("parent-n1-0"));
    assert_eq!(
        services
            .create_child(launch("parent", "n1", 0, &lp, 5))
            .await
            .unwrap(),
        child
    );
    let starts = s
        .launcher
        .started
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.id.name == "parent-n1-0")
        .count();
    assert_eq!(starts, 1);
    let started = s.launcher.started("parent-n1-0");
    assert_eq!(started.inputs, map(&[("x", int_lit(5))]));
    assert_eq!(started.envs["K"], "V");
    assert_eq!(started.max_parallelism, 3);

    // Linked to its parent node, one level deeper, CHILD_WORKFLOW.
    let got = s.get("parent-n1-0").await;
    let meta = metadata(&got);
    assert_eq!(meta.mode, ExecutionMode::ChildWorkflow as i32);
    assert_eq!(meta.nesting, 1);
    assert_eq!(meta.principal, "alice");
    assert_eq!(
        meta.parent_node_execution,
        Some(NodeExecutionIdentifier {
            node_id: "n1".into(),
            execution_id: Some(exec_id("parent")),
        })
    );
    // ListExecutions lists it with its parent, as flyteadmin does.
    let listed = s
        .admin
        .list_executions(ResourceListRequest {
            id: Some(NamedEntityIdentifier {
                project: PROJECT.into(),
                domain: DOMAIN.into(),
                ..Default::default()
            }),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let names: Vec<_> = listed
        .executions
        .iter()
        .map(|e| e.id.as_ref().unwrap().name.as_str())
        .collect();
    assert!(
        names.contains(&"parent") && names.contains(&"parent-n1-0"),
        "{names:?}"
    );

    // Status follows the child: queued, then succeeded with its outputs.
    let status = services.status(&child).await.unwrap();
    assert_eq!(status.phase, WP::Queued as i32);
    assert!(!status.terminal);
    s.finish(
        "parent-n1-0",
        WP::Succeeded,
        Some(workflow_execution_event::OutputResult::OutputData(map(&[
            ("o", int_lit(7)),
        ]))),
    )
    .await;
    let status = services.status(&child).await.unwrap();
    assert!(status.terminal);
    assert_eq!(status.phase, WP::Succeeded as i32);
    assert_eq!(status.outputs, Some(map(&[("o", int_lit(7))])));

    // Another attempt is another child; aborting it finishes it ABORTED with the cause.
    let second = services
        .create_child(launch("parent", "n1", 1, &lp, 5))
        .await
        .unwrap();
    assert_eq!(second.name, "parent-n1-1");
    services.abort(&second, "parent aborted").await.unwrap();
    let status = services.status(&second).await.unwrap();
    assert_eq!(status.phase, WP::Aborted as i32);
    assert!(status.terminal);
    assert!(
        status.error.unwrap().message.contains("parent aborted"),
        "aborted child carries the cause"
    );
    // Aborting a finished or unknown child is fine.
    services.abort(&second, "again").await.unwrap();
    services.abort(&exec_id("nope"), "x").await.unwrap();

    // Long names are hashed to 14 characters, deterministically.
    let long = services
        .create_child(launch("parent", "n2-0-dn10-0-n3", 2, &lp, 1))
        .await
        .unwrap();
    assert_eq!(long.name.len(), 14);
    assert!(long.name.starts_with('f'));
    assert_eq!(
        services
            .create_child(launch("parent", "n2-0-dn10-0-n3", 2, &lp, 1))
            .await
            .unwrap(),
        long
    );

    // Bad launches: unknown launch plan, inputs of the wrong type, unknown parent.
    let mut missing = lp.clone();
    missing.version = "nope".into();
    let err = services
        .create_child(launch("parent", "n5", 0, &missing, 1))
        .await
        .unwrap_err();
    assert!(matches!(err, ExternalError::NotFound(_)), "{err}");
    let mut bad = launch("parent", "n6", 0, &lp, 1);
    bad.inputs = map(&[("x", str_lit("one"))]);
    let err = services.create_child(bad).await.unwrap_err();
    assert!(matches!(err, ExternalError::Invalid(_)), "{err}");
    let err = services
        .create_child(launch("ghost", "n1", 0, &lp, 1))
        .await
        .unwrap_err();
    assert!(matches!(err, ExternalError::NotFound(_)), "{err}");
}

#[tokio::test]
async fn a_recovering_child_recovers_the_original_child() {
    let (mut s, _, lp) = registered().await;
    for name in ["p1", "p2"] {
        s.admin
            .create_execution(create_request(&lp, name, map(&[("x", int_lit(1))])))
            .await
            .unwrap();
    }
    let services = EngineServices::new(s.state.clone());
    let original = services
        .create_child(launch("p1", "n0", 0, &lp, 2))
        .await
        .unwrap();
    s.finish(&original.name, WP::Failed, failed()).await;

    let mut again = launch("p2", "n0", 0, &lp, 2);
    again.recover_from = Some(original.clone());
    let child = services.create_child(again).await.unwrap();
    assert_eq!(child.name, "p2-n0-0");
    let meta = metadata(&s.get("p2-n0-0").await);
    assert_eq!(meta.mode, ExecutionMode::Recovered as i32);
    assert_eq!(meta.reference_execution, Some(original.clone()));
    assert_eq!(
        meta.parent_node_execution.unwrap().execution_id,
        Some(exec_id("p2"))
    );
    assert_eq!(s.launcher.started("p2-n0-0").recover_from, Some(original));

    // The original child is gone: launched afresh.
    let mut fresh = launch("p2", "n1", 0, &lp, 2);
    fresh.recover_from = Some(exec_id("gone"));
    services.create_child(fresh).await.unwrap();
    let meta = metadata(&s.get("p2-n1-0").await);
    assert_eq!(meta.mode, ExecutionMode::ChildWorkflow as i32);
}

#[tokio::test]
async fn recovery_lookup_returns_the_original_outputs() {
    use core::node_execution::Phase as NP;
    let (mut s, _, lp) = registered().await;
    s.admin
        .create_execution(create_request(&lp, "orig", map(&[("x", int_lit(1))])))
        .await
        .unwrap();
    s.admin
        .create_workflow_event(wf_event("orig", WP::Running, 1, None))
        .await
        .unwrap();
    let in0 = s
        .put_map("orig/n0/inputs.pb", &map(&[("a", int_lit(1))]))
        .await;
    let out0 = s
        .put_map("orig/n0/0/outputs.pb", &map(&[("b", int_lit(2))]))
        .await;
    let events = [
        // n0: a task node that succeeded, outputs offloaded.
        with_inputs(node_event("orig", "n0", None, NP::Running, 1), &in0),
        node_event_with(
            node_event("orig", "n0", None, NP::Succeeded, 2),
            node_execution_event::OutputResult::OutputUri(out0.clone()),
        ),
        // n1: a dynamic node that failed after its parent task wrote futures.pb; one of its
        // sub-nodes succeeded (inline outputs), one failed.
        dynamic(node_event("orig", "n1", None, NP::Running, 3)),
        node_event("orig", "n1-0-dn0", Some("n1"), NP::Running, 4),
        node_event_with(
            node_event("orig", "n1-0-dn0", Some("n1"), NP::Succeeded, 5),
            node_execution_event::OutputResult::OutputData(map(&[("o", str_lit("sub"))])),
        ),
        node_event("orig", "n1-0-dn1", Some("n1"), NP::Running, 4),
        node_event_with(
            node_event("orig", "n1-0-dn1", Some("n1"), NP::Failed, 6),
            failure(),
        ),
        node_event_with(node_event("orig", "n1", None, NP::Failed, 7), failure()),
        // n2: skipped (an untaken branch).
        node_event("orig", "n2", None, NP::Skipped, 8),
        // n3: a map task (array node) that succeeded.
        array(node_event("orig", "n3", None, NP::Running, 3)),
        node_event_with(
            node_event("orig", "n3", None, NP::Succeeded, 9),
            node_execution_event::OutputResult::OutputData(map(&[(
                "o",
                flyteidl::core::Literal {
                    value: Some(flyteidl::core::literal::Value::Collection(
                        flyteidl::core::LiteralCollection {
                            literals: vec![int_lit(1), int_lit(2)],
                        },
                    )),
                    ..Default::default()
                },
            )])),
        ),
        // n4: a launch-plan node whose child succeeded.
        child_node(node_event("orig", "n4", None, NP::Running, 3)),
        node_event("orig", "n4", None, NP::Succeeded, 9),
        // n5: a launch-plan node whose child failed.
        child_node_named(node_event("orig", "n5", None, NP::Running, 3), "orig-n5-0"),
        node_event_with(node_event("orig", "n5", None, NP::Failed, 9), failure()),
    ];
    for event in events {
        s.admin
            .create_node_event(node_req(event))
            .await
            .unwrap_or_else(|e| panic!("{e:?}"));
    }
    s.finish_from_running("orig", WP::Failed).await;

    let services = EngineServices::new(s.state.clone());
    let original = exec_id("orig");
    let lookup = |node: &'static str| {
        let services = services.clone();
        let original = original.clone();
        async move { services.recover_node(&original, node).await.unwrap() }
    };

    let Some(RecoveredNode::Succeeded(n0)) = lookup("n0").await else {
        panic!("n0 succeeded in the original");
    };
    assert_eq!(n0.outputs, map(&[("b", int_lit(2))]));
    assert_eq!(n0.output_uri.as_deref(), Some(out0.as_str()));
    assert_eq!(n0.inputs, Some(map(&[("a", int_lit(1))])));

    let Some(RecoveredNode::Succeeded(sub)) = lookup("n1-0-dn0").await else {
        panic!("the dynamic sub-node succeeded in the original");
    };
    assert_eq!(sub.outputs, map(&[("o", str_lit("sub"))]));
    assert_eq!(sub.output_uri, None);

    let Some(RecoveredNode::Partial {
        dynamic_job_spec_uri,
        checkpoint_uri,
        ..
    }) = lookup("n1").await
    else {
        panic!("the failed dynamic node is partly reusable");
    };
    assert_eq!(
        dynamic_job_spec_uri.as_deref(),
        Some("file:///orig/n1/0/futures.pb")
    );
    assert_eq!(checkpoint_uri, None);

    let Some(RecoveredNode::Succeeded(n3)) = lookup("n3").await else {
        panic!("the array node succeeded in the original");
    };
    assert!(n3.is_array);
    assert_eq!(n3.outputs.literals.len(), 1);

    let Some(RecoveredNode::Succeeded(n4)) = lookup("n4").await else {
        panic!("the launch-plan node succeeded in the original");
    };
    assert_eq!(n4.launched_execution, Some(exec_id("orig-n4-0")));
    assert_eq!(n4.outputs, map(&[]));

    let Some(RecoveredNode::Partial {
        launched_execution, ..
    }) = lookup("n5").await
    else {
        panic!("the failed launch-plan node names its child");
    };
    assert_eq!(launched_execution, Some(exec_id("orig-n5-0")));

    assert_eq!(lookup("n1-0-dn1").await, None, "failed, nothing to reuse");
    assert_eq!(lookup("n2").await, None, "skipped");
    assert_eq!(lookup("n9").await, None, "not in the original");
    assert_eq!(
        services
            .recover_node(&exec_id("ghost"), "n0")
            .await
            .unwrap(),
        None
    );
    let _ = lp;
}

fn node_event_with(
    mut event: event::NodeExecutionEvent,
    output: node_execution_event::OutputResult,
) -> event::NodeExecutionEvent {
    event.output_result = Some(output);
    event
}

fn failure() -> node_execution_event::OutputResult {
    node_execution_event::OutputResult::Error(ExecutionError {
        code: "USER:Boom".into(),
        message: "boom".into(),
        ..Default::default()
    })
}

fn dynamic(mut event: event::NodeExecutionEvent) -> event::NodeExecutionEvent {
    event.is_dynamic = true;
    event.is_parent = true;
    event.target_metadata = Some(node_execution_event::TargetMetadata::TaskNodeMetadata(
        event::TaskNodeMetadata {
            dynamic_workflow: Some(Box::new(event::DynamicWorkflowNodeMetadata {
                dynamic_job_spec_uri: "file:///orig/n1/0/futures.pb".into(),
                ..Default::default()
            })),
            ..Default::default()
        },
    ));
    event
}

fn array(mut event: event::NodeExecutionEvent) -> event::NodeExecutionEvent {
    event.is_array = true;
    event
}

fn child_node(event: event::NodeExecutionEvent) -> event::NodeExecutionEvent {
    child_node_named(event, "orig-n4-0")
}

fn child_node_named(
    mut event: event::NodeExecutionEvent,
    child: &str,
) -> event::NodeExecutionEvent {
    event.target_metadata = Some(node_execution_event::TargetMetadata::WorkflowNodeMetadata(
        event::WorkflowNodeMetadata {
            execution_id: Some(exec_id(child)),
        },
    ));
    event
}

impl Server {
    async fn finish_from_running(&mut self, name: &str, phase: WP) {
        self.admin
            .create_workflow_event(wf_event(name, phase, 20, failed()))
            .await
            .unwrap();
    }
}
