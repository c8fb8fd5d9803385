//! Executions over a real tonic server with SQLite: creation from launch plans and tasks,
//! input merging and type errors, name rules, event rules through the Create*Event RPCs,
//! lists, terminate, and GetExecutionData.

#![allow(deprecated)]

mod admin_support;

use admin_support::*;
use flyte_admin::AdminConfig;
use flyte_admin::service::admin::events::failure_reason;
use flyteidl::admin::*;
use flyteidl::core::{
    self, ExecutionError, Literal, LiteralMap, NodeExecutionIdentifier, Primitive, ResourceType,
    Scalar, TaskLog, WorkflowExecutionIdentifier, literal, primitive, scalar,
};
use flyteidl::event::{
    NodeExecutionEvent, ParentNodeExecutionMetadata, TaskExecutionEvent, WorkflowExecutionEvent,
    node_execution_event, task_execution_event, workflow_execution_event,
};
use tonic::Code;

fn int_lit(v: i64) -> Literal {
    Literal {
        value: Some(literal::Value::Scalar(Box::new(Scalar {
            value: Some(scalar::Value::Primitive(Primitive {
                value: Some(primitive::Value::Integer(v)),
            })),
        }))),
        ..Default::default()
    }
}

fn str_lit(v: &str) -> Literal {
    Literal {
        value: Some(literal::Value::Scalar(Box::new(Scalar {
            value: Some(scalar::Value::Primitive(Primitive {
                value: Some(primitive::Value::StringValue(v.into())),
            })),
        }))),
        ..Default::default()
    }
}

fn inputs(pairs: &[(&str, Literal)]) -> LiteralMap {
    LiteralMap {
        literals: pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    }
}

fn create(target: &core::Identifier, name: &str, ins: LiteralMap) -> ExecutionCreateRequest {
    ExecutionCreateRequest {
        project: PROJECT.into(),
        domain: DOMAIN.into(),
        name: name.into(),
        spec: Some(ExecutionSpec {
            launch_plan: Some(target.clone()),
            metadata: Some(ExecutionMetadata {
                mode: 0,
                principal: "placeholder".into(),
                ..Default::default()
            }),
            tags: vec!["t1".into()],
            ..Default::default()
        }),
        inputs: Some(ins),
        ..Default::default()
    }
}

fn exec_id(name: &str) -> WorkflowExecutionIdentifier {
    WorkflowExecutionIdentifier {
        project: PROJECT.into(),
        domain: DOMAIN.into(),
        name: name.into(),
        ..Default::default()
    }
}

fn ts(seconds: i64) -> pbjson_types::Timestamp {
    pbjson_types::Timestamp {
        seconds: 1_700_000_000 + seconds,
        nanos: 0,
    }
}

fn wf_event(
    name: &str,
    phase: core::workflow_execution::Phase,
    at: i64,
) -> WorkflowExecutionEventRequest {
    WorkflowExecutionEventRequest {
        request_id: String::new(),
        event: Some(WorkflowExecutionEvent {
            execution_id: Some(exec_id(name)),
            producer_id: "propeller".into(),
            phase: phase as i32,
            occurred_at: Some(ts(at)),
            output_result: None,
        }),
    }
}

fn node_event(
    name: &str,
    node: &str,
    phase: core::node_execution::Phase,
    at: i64,
) -> NodeExecutionEvent {
    NodeExecutionEvent {
        id: Some(NodeExecutionIdentifier {
            node_id: node.into(),
            execution_id: Some(exec_id(name)),
        }),
        phase: phase as i32,
        occurred_at: Some(ts(at)),
        spec_node_id: node.into(),
        input_value: Some(node_execution_event::InputValue::InputUri(format!(
            "s3://b/{node}/inputs.pb"
        ))),
        ..Default::default()
    }
}

fn node_req(event: NodeExecutionEvent) -> NodeExecutionEventRequest {
    NodeExecutionEventRequest {
        request_id: String::new(),
        event: Some(event),
    }
}

fn task_event(
    name: &str,
    node: &str,
    task: &core::Identifier,
    attempt: u32,
    phase: core::task_execution::Phase,
    version: u32,
    at: i64,
) -> TaskExecutionEventRequest {
    TaskExecutionEventRequest {
        request_id: String::new(),
        event: Some(TaskExecutionEvent {
            task_id: Some(task.clone()),
            parent_node_execution_id: Some(NodeExecutionIdentifier {
                node_id: node.into(),
                execution_id: Some(exec_id(name)),
            }),
            retry_attempt: attempt,
            phase: phase as i32,
            phase_version: version,
            occurred_at: Some(ts(at)),
            ..Default::default()
        }),
    }
}

#[tokio::test]
async fn creates_from_a_launch_plan_and_reads_it_back() {
    let mut server = start().await;
    let (_, wf_id, lp_id) = register_all(&mut server.client, "v1").await;
    let c = &mut server.client;

    let id = c
        .create_execution(create(&lp_id, "", inputs(&[("x", int_lit(3))])))
        .await
        .unwrap()
        .into_inner()
        .id
        .unwrap();
    assert_eq!(id.name.len(), 20, "{}", id.name);
    assert!(id.name.starts_with('a'));
    assert!(
        id.name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    );

    let exec = c
        .get_execution(WorkflowExecutionGetRequest {
            id: Some(id.clone()),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(exec.id.as_ref(), Some(&id));
    let spec = exec.spec.unwrap();
    assert_eq!(spec.launch_plan.as_ref(), Some(&lp_id));
    assert_eq!(spec.tags, ["t1"]);
    let closure = exec.closure.unwrap();
    assert_eq!(
        closure.phase,
        core::workflow_execution::Phase::Queued as i32
    );
    assert_eq!(closure.workflow_id.as_ref(), Some(&wf_id));
    assert!(closure.created_at.is_some());

    // Small inputs are kept in the execution's row and returned inline, with their size and
    // no URL (inputs_above_the_inline_limit_are_offloaded covers offloaded ones).
    let data = c
        .get_execution_data(WorkflowExecutionGetDataRequest {
            id: Some(id.clone()),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(data.full_inputs.unwrap(), inputs(&[("x", int_lit(3))]));
    let blob = data.inputs.unwrap();
    assert_eq!(blob.url, "");
    assert!(blob.bytes > 0);
    assert!(data.full_outputs.is_none());

    // A taken name is ALREADY_EXISTS.
    c.create_execution(create(&lp_id, "my-run", inputs(&[("x", int_lit(1))])))
        .await
        .unwrap();
    let err = c
        .create_execution(create(&lp_id, "my-run", inputs(&[("x", int_lit(1))])))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");

    // Unknown launch plan and unknown execution: NOT_FOUND.
    let mut missing_lp = lp_id.clone();
    missing_lp.version = "nope".into();
    let err = c
        .create_execution(create(&missing_lp, "", inputs(&[("x", int_lit(1))])))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    let err = c
        .get_execution(WorkflowExecutionGetRequest {
            id: Some(exec_id("zzz")),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

#[tokio::test]
async fn inputs_are_merged_and_type_checked() {
    let mut server = start().await;
    let (_, wf_id, _) = register_all(&mut server.client, "v1").await;
    let c = &mut server.client;
    // A launch plan with a default for x.
    let mut lp = launch_plan_request("with-default", "v1", &wf_id);
    let params = &mut lp
        .spec
        .as_mut()
        .unwrap()
        .default_inputs
        .as_mut()
        .unwrap()
        .parameters;
    params.get_mut("x").unwrap().behavior = Some(core::parameter::Behavior::Default(int_lit(42)));
    let lp_id = lp.id.clone().unwrap();
    c.create_launch_plan(lp).await.unwrap();

    c.create_execution(create(&lp_id, "defaulted", inputs(&[])))
        .await
        .unwrap();
    let data = c
        .get_execution_data(WorkflowExecutionGetDataRequest {
            id: Some(exec_id("defaulted")),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(data.full_inputs.unwrap(), inputs(&[("x", int_lit(42))]));

    let required = id(ResourceType::LaunchPlan, "wf", "v1");
    let err = c
        .create_execution(create(&required, "", inputs(&[])))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("missing") && err.message().contains('x'),
        "{}",
        err.message()
    );

    let err = c
        .create_execution(create(&required, "", inputs(&[("x", str_lit("three"))])))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("x input wrong type"),
        "{}",
        err.message()
    );

    let err = c
        .create_execution(create(
            &required,
            "",
            inputs(&[("x", int_lit(1)), ("y", int_lit(2))]),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("invalid input(s) 'y'"),
        "{}",
        err.message()
    );

    // Nothing was recorded by the refused requests.
    let list = c
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
    assert_eq!(list.executions.len(), 1);
}

#[tokio::test]
async fn names_are_validated() {
    let mut server = start().await;
    let (_, _, lp_id) = register_all(&mut server.client, "v1").await;
    let c = &mut server.client;
    for bad in ["1abc", "has_underscore", "dot.ted", &"a".repeat(64)] {
        let err = c
            .create_execution(create(&lp_id, bad, inputs(&[("x", int_lit(1))])))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{bad}: {err:?}");
    }
    for good in ["a", "run-1", &"b".repeat(63)] {
        c.create_execution(create(&lp_id, good, inputs(&[("x", int_lit(1))])))
            .await
            .unwrap_or_else(|e| panic!("{good}: {e:?}"));
    }
    // Unknown project, archived project (checked by the insert; named as when read first),
    // bad resource type.
    let mut req = create(&lp_id, "", inputs(&[("x", int_lit(1))]));
    req.project = "nope".into();
    let err = c.create_execution(req).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("is not registered"), "{err:?}");
    let old = Project {
        id: "old".into(),
        name: "old".into(),
        ..Default::default()
    };
    c.register_project(ProjectRegisterRequest {
        project: Some(old.clone()),
    })
    .await
    .unwrap();
    let mut req = create(&lp_id, "in-old", inputs(&[("x", int_lit(1))]));
    req.project = "old".into();
    c.create_execution(req.clone()).await.unwrap();
    c.update_project(Project {
        state: project::ProjectState::Archived as i32,
        ..old
    })
    .await
    .unwrap();
    for name in ["in-old", "in-old-2"] {
        req.name = name.into();
        let err = c.create_execution(req.clone()).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{name}");
        assert!(err.message().contains("is archived"), "{name}: {err:?}");
    }
    let mut wf_target = lp_id.clone();
    wf_target.resource_type = ResourceType::Workflow as i32;
    let err = c
        .create_execution(create(&wf_target, "", inputs(&[("x", int_lit(1))])))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn single_task_executions_synthesize_workflow_and_launch_plan() {
    let mut server = start().await;
    let (task_id, _, _) = register_all(&mut server.client, "v1").await;
    let c = &mut server.client;
    let id = c
        .create_execution(create(&task_id, "", inputs(&[("a", int_lit(5))])))
        .await
        .unwrap()
        .into_inner()
        .id
        .unwrap();
    let wf = c
        .get_workflow(get(&core::Identifier {
            resource_type: ResourceType::Workflow as i32,
            name: ".flytegen.t".into(),
            ..task_id.clone()
        }))
        .await
        .unwrap()
        .into_inner();
    let compiled = wf.closure.unwrap().compiled_workflow.unwrap();
    let template = compiled.primary.unwrap().template.unwrap();
    assert!(template.nodes.iter().any(|n| n.id == "t"));
    assert_eq!(compiled.tasks.len(), 1);
    let lp = c
        .get_launch_plan(get(&core::Identifier {
            resource_type: ResourceType::LaunchPlan as i32,
            name: ".flytegen.t".into(),
            ..task_id.clone()
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(
        lp.closure
            .unwrap()
            .expected_inputs
            .unwrap()
            .parameters
            .contains_key("a")
    );
    let data = c
        .get_execution_data(WorkflowExecutionGetDataRequest { id: Some(id) })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(data.full_inputs.unwrap(), inputs(&[("a", int_lit(5))]));

    // A second run reuses them; a missing task is NOT_FOUND.
    c.create_execution(create(&task_id, "", inputs(&[("a", int_lit(6))])))
        .await
        .unwrap();
    let mut missing = task_id.clone();
    missing.name = "nope".into();
    let err = c
        .create_execution(create(&missing, "", inputs(&[])))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
}

#[tokio::test]
async fn workflow_events_follow_flyteadmin_rules() {
    use core::workflow_execution::Phase as P;
    let mut server = start().await;
    let (_, _, lp_id) = register_all(&mut server.client, "v1").await;
    let c = &mut server.client;
    c.create_execution(create(&lp_id, "ev", inputs(&[("x", int_lit(1))])))
        .await
        .unwrap();

    c.create_workflow_event(wf_event("ev", P::Running, 10))
        .await
        .unwrap();
    let err = c
        .create_workflow_event(wf_event("ev", P::Running, 11))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    let err = c
        .create_workflow_event(wf_event("ev", P::Queued, 12))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);

    let mut done = wf_event("ev", P::Succeeded, 20);
    let outputs = inputs(&[("o", int_lit(9))]);
    done.event.as_mut().unwrap().output_result = Some(
        workflow_execution_event::OutputResult::OutputData(outputs.clone()),
    );
    c.create_workflow_event(done).await.unwrap();

    let exec = c
        .get_execution(WorkflowExecutionGetRequest {
            id: Some(exec_id("ev")),
        })
        .await
        .unwrap()
        .into_inner();
    let closure = exec.closure.unwrap();
    assert_eq!(closure.phase, P::Succeeded as i32);
    assert_eq!(closure.started_at, Some(ts(10)));
    assert_eq!(closure.duration.unwrap().seconds, 10);
    assert_eq!(closure.updated_at, Some(ts(20)));
    let data = c
        .get_execution_data(WorkflowExecutionGetDataRequest {
            id: Some(exec_id("ev")),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(data.full_outputs.unwrap(), outputs);

    // Leaving a terminal phase: FAILED_PRECONDITION with the terminal-state detail.
    let err = c
        .create_workflow_event(wf_event("ev", P::Failed, 30))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    match failure_reason(&err).and_then(|r| r.reason) {
        Some(event_failure_reason::Reason::AlreadyInTerminalState(s)) => {
            assert_eq!(s.current_phase, "SUCCEEDED")
        }
        other => panic!("no terminal-state detail: {other:?}"),
    }
    // Unknown execution: NOT_FOUND.
    let err = c
        .create_workflow_event(wf_event("nope", P::Running, 1))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    // Failure carries the error.
    c.create_execution(create(&lp_id, "ev2", inputs(&[("x", int_lit(1))])))
        .await
        .unwrap();
    let mut failed = wf_event("ev2", P::Failed, 5);
    failed.event.as_mut().unwrap().output_result = Some(
        workflow_execution_event::OutputResult::Error(ExecutionError {
            code: "USER:Boom".into(),
            message: "it broke".into(),
            ..Default::default()
        }),
    );
    c.create_workflow_event(failed).await.unwrap();
    let closure = c
        .get_execution(WorkflowExecutionGetRequest {
            id: Some(exec_id("ev2")),
        })
        .await
        .unwrap()
        .into_inner()
        .closure
        .unwrap();
    match closure.output_result {
        Some(execution_closure::OutputResult::Error(e)) => assert_eq!(e.message, "it broke"),
        other => panic!("{other:?}"),
    }
    assert!(closure.duration.is_none(), "never started");
}

#[tokio::test]
async fn node_and_task_events_lists_and_data() {
    use core::node_execution::Phase as N;
    use core::task_execution::Phase as T;
    let mut server = start().await;
    let (task_id, _, lp_id) = register_all(&mut server.client, "v1").await;
    let c = &mut server.client;
    c.create_execution(create(&lp_id, "nodes", inputs(&[("x", int_lit(1))])))
        .await
        .unwrap();

    c.create_node_event(node_req(node_event("nodes", "n0", N::Queued, 1)))
        .await
        .unwrap();
    c.create_node_event(node_req(node_event("nodes", "n0", N::Running, 2)))
        .await
        .unwrap();
    let err = c
        .create_node_event(node_req(node_event("nodes", "n0", N::Running, 3)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    // A sub-workflow parent and its child.
    let mut parent = node_event("nodes", "n1", N::Running, 2);
    parent.is_parent = true;
    c.create_node_event(node_req(parent)).await.unwrap();
    let mut child = node_event("nodes", "n1-0-n0", N::Running, 3);
    child.parent_node_metadata = Some(ParentNodeExecutionMetadata {
        node_id: "n1".into(),
    });
    c.create_node_event(node_req(child)).await.unwrap();
    // A child of an unknown parent is refused.
    let mut orphan = node_event("nodes", "n9-0-n0", N::Running, 3);
    orphan.parent_node_metadata = Some(ParentNodeExecutionMetadata {
        node_id: "n9".into(),
    });
    assert_eq!(
        c.create_node_event(node_req(orphan))
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );

    // Task attempts: higher phase_version wins, logs merge, terminal is final.
    c.create_task_event(task_event("nodes", "n0", &task_id, 0, T::Running, 0, 2))
        .await
        .unwrap();
    let dup = c
        .create_task_event(task_event("nodes", "n0", &task_id, 0, T::Running, 0, 3))
        .await
        .unwrap_err();
    assert_eq!(dup.code(), Code::AlreadyExists);
    let mut logs = task_event("nodes", "n0", &task_id, 0, T::Running, 1, 3);
    logs.event.as_mut().unwrap().logs = vec![TaskLog {
        uri: "http://logs/0".into(),
        name: "stdout".into(),
        ..Default::default()
    }];
    c.create_task_event(logs).await.unwrap();
    let mut ok = task_event("nodes", "n0", &task_id, 0, T::Succeeded, 0, 5);
    ok.event.as_mut().unwrap().output_result = Some(task_execution_event::OutputResult::OutputUri(
        "s3://b/n0/0/outputs.pb".into(),
    ));
    c.create_task_event(ok).await.unwrap();
    let err = c
        .create_task_event(task_event("nodes", "n0", &task_id, 0, T::Running, 5, 6))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(failure_reason(&err).is_some());
    // A task event for a node that never reported: NOT_FOUND.
    let err = c
        .create_task_event(task_event("nodes", "nx", &task_id, 0, T::Running, 0, 2))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    let mut done = node_event("nodes", "n0", N::Succeeded, 6);
    let outputs = inputs(&[("b", int_lit(2))]);
    done.output_result = Some(node_execution_event::OutputResult::OutputData(
        outputs.clone(),
    ));
    c.create_node_event(node_req(done)).await.unwrap();
    let err = c
        .create_node_event(node_req(node_event("nodes", "n0", N::Running, 7)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);

    // Lists: only top-level nodes without a parent; children by unique_parent_id.
    let list = |parent: &str| NodeExecutionListRequest {
        workflow_execution_id: Some(exec_id("nodes")),
        limit: 100,
        unique_parent_id: parent.into(),
        ..Default::default()
    };
    let top = c.list_node_executions(list("")).await.unwrap().into_inner();
    let mut ids: Vec<_> = top
        .node_executions
        .iter()
        .map(|n| n.id.as_ref().unwrap().node_id.clone())
        .collect();
    ids.sort();
    assert_eq!(ids, ["n0", "n1"]);
    let n1 = top
        .node_executions
        .iter()
        .find(|n| n.id.as_ref().unwrap().node_id == "n1")
        .unwrap();
    assert!(n1.metadata.as_ref().unwrap().is_parent_node);
    let children = c
        .list_node_executions(list("n1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(children.node_executions.len(), 1);
    assert_eq!(
        children.node_executions[0].id.as_ref().unwrap().node_id,
        "n1-0-n0"
    );
    let mut filtered = list("");
    filtered.filters = "eq(phase,SUCCEEDED)".into();
    let done = c.list_node_executions(filtered).await.unwrap().into_inner();
    assert_eq!(done.node_executions.len(), 1);
    let n0 = &done.node_executions[0];
    let closure = n0.closure.as_ref().unwrap();
    assert_eq!(closure.started_at, Some(ts(2)));
    assert_eq!(closure.duration.as_ref().unwrap().seconds, 4);
    assert_eq!(n0.input_uri, "s3://b/n0/inputs.pb");

    let node_id = NodeExecutionIdentifier {
        node_id: "n0".into(),
        execution_id: Some(exec_id("nodes")),
    };
    let data = c
        .get_node_execution_data(NodeExecutionGetDataRequest {
            id: Some(node_id.clone()),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(data.full_outputs.unwrap(), outputs);

    let tasks = c
        .list_task_executions(TaskExecutionListRequest {
            node_execution_id: Some(node_id.clone()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(tasks.task_executions.len(), 1);
    let te = &tasks.task_executions[0];
    let closure = te.closure.as_ref().unwrap();
    assert_eq!(closure.phase, T::Succeeded as i32);
    assert_eq!(closure.logs.len(), 1);
    assert_eq!(closure.duration.as_ref().unwrap().seconds, 3);
    let got = c
        .get_task_execution(TaskExecutionGetRequest { id: te.id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.closure, te.closure);
    let err = c
        .get_node_execution(NodeExecutionGetRequest {
            id: Some(NodeExecutionIdentifier {
                node_id: "zz".into(),
                execution_id: Some(exec_id("nodes")),
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

#[tokio::test]
async fn lists_filter_sort_paginate_and_terminate() {
    use core::workflow_execution::Phase as P;
    let mut server = start().await;
    let (_, _, lp_id) = register_all(&mut server.client, "v1").await;
    let c = &mut server.client;
    for i in 0..5 {
        c.create_execution(create(
            &lp_id,
            &format!("e{i}"),
            inputs(&[("x", int_lit(i))]),
        ))
        .await
        .unwrap();
    }
    c.create_workflow_event(wf_event("e1", P::Running, 1))
        .await
        .unwrap();
    c.create_workflow_event(wf_event("e2", P::Running, 1))
        .await
        .unwrap();
    let req = |filters: &str, limit: u32, token: &str| ResourceListRequest {
        id: Some(NamedEntityIdentifier {
            project: PROJECT.into(),
            domain: DOMAIN.into(),
            ..Default::default()
        }),
        limit,
        token: token.into(),
        filters: filters.into(),
        sort_by: Some(Sort {
            key: "name".into(),
            direction: sort::Direction::Ascending as i32,
        }),
    };
    let names = |l: &ExecutionList| -> Vec<String> {
        l.executions
            .iter()
            .map(|e| e.id.as_ref().unwrap().name.clone())
            .collect()
    };
    let running = c
        .list_executions(req("eq(phase,RUNNING)", 10, ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(names(&running), ["e1", "e2"]);
    let by_lp = c
        .list_executions(req(
            "eq(launch_plan.name,wf)+value_in(execution.name,e0;e4)",
            10,
            "",
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(names(&by_lp), ["e0", "e4"]);
    let p1 = c
        .list_executions(req("", 3, ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(names(&p1), ["e0", "e1", "e2"]);
    let p2 = c
        .list_executions(req("", 3, &p1.token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(names(&p2), ["e3", "e4"]);
    assert!(p2.token.is_empty());
    let err = c
        .list_executions(req("eq(bogus,1)", 3, ""))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    // Archived executions drop out of the default list.
    c.update_execution(ExecutionUpdateRequest {
        id: Some(exec_id("e3")),
        state: ExecutionState::ExecutionArchived as i32,
    })
    .await
    .unwrap();
    let all = c
        .list_executions(req("", 10, ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(names(&all), ["e0", "e1", "e2", "e4"]);
    let archived = c
        .list_executions(req("eq(state,1)", 10, ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(names(&archived), ["e3"]);

    // Terminate with no engine running it: ABORTED at once, with the cause; then terminal.
    c.terminate_execution(ExecutionTerminateRequest {
        id: Some(exec_id("e1")),
        cause: "no longer needed".into(),
    })
    .await
    .unwrap();
    let closure = c
        .get_execution(WorkflowExecutionGetRequest {
            id: Some(exec_id("e1")),
        })
        .await
        .unwrap()
        .into_inner()
        .closure
        .unwrap();
    assert_eq!(closure.phase, P::Aborted as i32);
    match closure.output_result {
        Some(execution_closure::OutputResult::AbortMetadata(m)) => {
            assert_eq!(m.cause, "no longer needed")
        }
        other => panic!("{other:?}"),
    }
    let err = c
        .create_workflow_event(wf_event("e1", P::Running, 2))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    let err = c
        .terminate_execution(ExecutionTerminateRequest {
            id: Some(exec_id("e1")),
            cause: "again".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(failure_reason(&err).is_some());
    let err = c
        .terminate_execution(ExecutionTerminateRequest {
            id: Some(exec_id("missing")),
            cause: "x".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

/// ListNodeExecutionsForTask lists the children one attempt of a dynamic node made, in full
/// pages until the last, even when another attempt's children are interleaved in time.
#[tokio::test]
async fn node_executions_for_task_page_one_attempts_children() {
    use core::node_execution::Phase as N;
    use core::task_execution::Phase as T;
    let mut server = start().await;
    let (task_id, _, lp_id) = register_all(&mut server.client, "v1").await;
    let c = &mut server.client;
    c.create_execution(create(&lp_id, "dyn", inputs(&[("x", int_lit(1))])))
        .await
        .unwrap();
    let mut parent = node_event("dyn", "n0", N::Running, 1);
    parent.is_parent = true;
    parent.is_dynamic = true;
    c.create_node_event(node_req(parent)).await.unwrap();
    for attempt in 0..2 {
        c.create_task_event(task_event("dyn", "n0", &task_id, attempt, T::Running, 0, 2))
            .await
            .unwrap();
    }
    // Attempt 0 made 5 children, attempt 1 made 4, interleaved.
    for i in 0..9 {
        let attempt = i % 2;
        let mut child = node_event("dyn", &format!("n0-{attempt}-dn{i}"), N::Running, 3 + i);
        child.parent_node_metadata = Some(ParentNodeExecutionMetadata {
            node_id: "n0".into(),
        });
        child.retry_group = attempt.to_string();
        c.create_node_event(node_req(child)).await.unwrap();
    }
    let mut request = NodeExecutionForTaskListRequest {
        task_execution_id: Some(core::TaskExecutionIdentifier {
            task_id: Some(task_id.clone()),
            node_execution_id: Some(NodeExecutionIdentifier {
                node_id: "n0".into(),
                execution_id: Some(exec_id("dyn")),
            }),
            retry_attempt: 1,
        }),
        limit: 2,
        sort_by: Some(Sort {
            key: "created_at".into(),
            direction: sort::Direction::Ascending as i32,
        }),
        ..Default::default()
    };
    let mut pages = Vec::new();
    loop {
        let page = c
            .list_node_executions_for_task(request.clone())
            .await
            .unwrap()
            .into_inner();
        pages.push(
            page.node_executions
                .iter()
                .map(|n| n.id.as_ref().unwrap().node_id.clone())
                .collect::<Vec<_>>(),
        );
        if page.token.is_empty() {
            break;
        }
        request.token = page.token;
    }
    assert_eq!(
        pages,
        [vec!["n0-1-dn1", "n0-1-dn3"], vec!["n0-1-dn5", "n0-1-dn7"]]
    );
    // Attempt 0's five: two full pages and the last one.
    request.token = String::new();
    request.task_execution_id.as_mut().unwrap().retry_attempt = 0;
    let first = c
        .list_node_executions_for_task(request.clone())
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<_> = first
        .node_executions
        .iter()
        .map(|n| n.id.as_ref().unwrap().node_id.clone())
        .collect();
    assert_eq!(ids, ["n0-0-dn0", "n0-0-dn2"]);
}

/// Counts the store's reads of node and task executions (one latency sample per operation).
struct NodeAndTaskReads(std::sync::Arc<std::sync::atomic::AtomicUsize>);

struct CountSample(std::sync::Arc<std::sync::atomic::AtomicUsize>);
impl metrics::HistogramFn for CountSample {
    fn record(&self, _: f64) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl metrics::Recorder for NodeAndTaskReads {
    fn describe_counter(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_gauge(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_histogram(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn register_counter(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        metrics::Counter::noop()
    }
    fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::noop()
    }
    fn register_histogram(
        &self,
        key: &metrics::Key,
        _: &metrics::Metadata<'_>,
    ) -> metrics::Histogram {
        let reads_records = key.labels().any(|l| {
            l.key() == flyte_store::metrics::LABEL_OP
                && (l.value().contains("node_execution") || l.value().contains("task_execution"))
        });
        if reads_records {
            metrics::Histogram::from_arc(std::sync::Arc::new(CountSample(self.0.clone())))
        } else {
            metrics::Histogram::noop()
        }
    }
}

/// GetExecutionMetrics reads an execution's node and task executions in one query each,
/// however many nodes it has (it read each node's task executions separately).
#[test]
fn execution_metrics_read_records_once_per_execution() {
    use core::node_execution::Phase as N;
    use core::task_execution::Phase as T;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let reads = std::sync::Arc::new(AtomicUsize::new(0));
    let recorder = NodeAndTaskReads(reads.clone());
    // One thread: the server's handlers run where the local recorder is installed.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    metrics::with_local_recorder(&recorder, || {
        runtime.block_on(async {
            let mut server = start().await;
            let (task_id, _, lp_id) = register_all(&mut server.client, "v1").await;
            let c = &mut server.client;
            c.create_execution(create(&lp_id, "wide", inputs(&[("x", int_lit(1))])))
                .await
                .unwrap();
            // The start node's end is when the workflow got going: node spans follow it.
            c.create_node_event(node_req(node_event("wide", "start-node", N::Succeeded, 1)))
                .await
                .unwrap();
            for i in 0..6 {
                let node = format!("n{i}");
                c.create_node_event(node_req(node_event("wide", &node, N::Running, 1 + i)))
                    .await
                    .unwrap();
                c.create_task_event(task_event("wide", &node, &task_id, 0, T::Running, 0, 2 + i))
                    .await
                    .unwrap();
            }
            let before = reads.load(Ordering::SeqCst);
            let span = c
                .get_execution_metrics(WorkflowExecutionGetMetricsRequest {
                    id: Some(exec_id("wide")),
                    depth: -1,
                })
                .await
                .unwrap()
                .into_inner()
                .span
                .unwrap();
            assert_eq!(
                reads.load(Ordering::SeqCst) - before,
                2,
                "one read of nodes, one of tasks"
            );
            let node_spans: Vec<_> = span
                .spans
                .iter()
                .filter(|s| matches!(s.id, Some(core::span::Id::NodeId(_))))
                .collect();
            assert_eq!(node_spans.len(), 6);
            for node in node_spans {
                assert!(
                    node.spans
                        .iter()
                        .any(|s| matches!(s.id, Some(core::span::Id::TaskId(_)))),
                    "{node:?}"
                );
            }
        })
    });
}

/// The directory where flyteadmin would offload the inputs of execution `name`.
fn offload_dir(server: &TestServer, name: &str) -> std::path::PathBuf {
    let url = server
        .state
        .blob
        .native_url(&format!("metadata/{PROJECT}/{DOMAIN}/{name}"));
    std::path::PathBuf::from(url.strip_prefix("file://").unwrap())
}

#[tokio::test]
async fn small_inputs_stay_in_the_execution_row_and_no_file_is_written() {
    let mut server = start().await;
    let (_, wf_id, _) = register_all(&mut server.client, "v1").await;
    let mut lp = launch_plan_request("with-default", "v1", &wf_id);
    let params = &mut lp
        .spec
        .as_mut()
        .unwrap()
        .default_inputs
        .as_mut()
        .unwrap()
        .parameters;
    params.get_mut("x").unwrap().behavior = Some(core::parameter::Behavior::Default(int_lit(42)));
    let lp_id = lp.id.clone().unwrap();
    server.client.create_launch_plan(lp).await.unwrap();

    // No user inputs (the default fills x), then one small input.
    for (name, given, merged) in [
        ("no-inputs", inputs(&[]), inputs(&[("x", int_lit(42))])),
        (
            "one-input",
            inputs(&[("x", int_lit(5))]),
            inputs(&[("x", int_lit(5))]),
        ),
    ] {
        server
            .client
            .create_execution(create(&lp_id, name, given))
            .await
            .unwrap();
        let dir = offload_dir(&server, name);
        assert!(!dir.exists(), "{} was created", dir.display());
        let data = server
            .client
            .get_execution_data(WorkflowExecutionGetDataRequest {
                id: Some(exec_id(name)),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(data.full_inputs.as_ref(), Some(&merged), "{name}");
        let blob = data.inputs.unwrap();
        assert_eq!(blob.url, "", "{name}: no blob to point at");
        assert!(blob.bytes > 0, "{name}");
    }
    // A taken name is still ALREADY_EXISTS, with the execution named.
    let err = server
        .client
        .create_execution(create(&lp_id, "no-inputs", inputs(&[])))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");
    assert!(err.message().contains("no-inputs"), "{}", err.message());
}

#[tokio::test]
async fn inputs_above_the_inline_limit_are_offloaded() {
    let mut server = start_with(AdminConfig {
        inline_inputs_max_bytes: 4,
        ..Default::default()
    })
    .await;
    let (_, _, lp_id) = register_all(&mut server.client, "v1").await;
    server
        .client
        .create_execution(create(&lp_id, "big", inputs(&[("x", int_lit(123_456))])))
        .await
        .unwrap();
    assert!(offload_dir(&server, "big").join("inputs").is_file());
    let data = server
        .client
        .get_execution_data(WorkflowExecutionGetDataRequest {
            id: Some(exec_id("big")),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        data.full_inputs.unwrap(),
        inputs(&[("x", int_lit(123_456))])
    );
    assert!(
        data.inputs
            .unwrap()
            .url
            .ends_with("metadata/flytesnacks/development/big/inputs")
    );
    // Offloaded inputs of an existing execution are not overwritten by a second creation.
    let err = server
        .client
        .create_execution(create(&lp_id, "big", inputs(&[("x", int_lit(999_999))])))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");
    let data = server
        .client
        .get_execution_data(WorkflowExecutionGetDataRequest {
            id: Some(exec_id("big")),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        data.full_inputs.unwrap(),
        inputs(&[("x", int_lit(123_456))])
    );
}
