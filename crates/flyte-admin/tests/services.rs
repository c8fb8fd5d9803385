//! The registration, signal and event services called directly, as in-process callers (the
//! engine, single-task executions, a scheduler) call them: plain Rust commands, no gRPC
//! request in between. Effects are read back over the API or from the store.

mod admin_support;
mod launch_support;

use flyte_admin::AdminError;
use flyte_admin::service::admin::events::{Rejection, to_proto};
use flyte_admin::services::events::EventError;
use flyte_admin::services::executions::{CreateExecution, ExecutionService, ExecutionSource};
use flyte_admin::services::registration::{RegisterTask, RegisterWorkflow};
use flyte_admin::services::signals::{GetOrCreateSignal, ListSignals, SetSignal};
use flyte_admin::services::{EventService, RegistrationService, SignalService};
use flyte_core::ids::ResourceType;
use flyte_store::{EntityKey, ExecutionKey, ListQuery, SignalKey};
use flyteidl::admin::ExecutionSpec;
use flyteidl::core::{WorkflowExecutionIdentifier, literal_type, workflow_execution};
use flyteidl::event::WorkflowExecutionEvent;
use launch_support::{DOMAIN, PROJECT, Server, int_lit, map};

fn execution(name: &str) -> ExecutionKey {
    ExecutionKey {
        project: PROJECT.into(),
        domain: DOMAIN.into(),
        name: name.into(),
    }
}

/// A server with task `t`, workflow `wf` and launch plan `wf` at v1, and execution `run`
/// of the launch plan recorded (QUEUED; the recording launcher runs nothing).
async fn with_execution() -> Server {
    let mut server = launch_support::start().await;
    admin_support::register_all(&mut server.admin, "v1").await;
    let lp = EntityKey {
        resource: ResourceType::LaunchPlan,
        project: PROJECT.into(),
        domain: DOMAIN.into(),
        name: "wf".into(),
        version: "v1".into(),
    };
    ExecutionService::new(server.state.clone())
        .create(CreateExecution {
            project: PROJECT.into(),
            domain: DOMAIN.into(),
            name: Some("run".into()),
            source: ExecutionSource::LaunchPlan(lp),
            inputs: map(&[("x", int_lit(1))]),
            spec: ExecutionSpec::default(),
            raw_spec: None,
        })
        .await
        .unwrap();
    server
}

#[tokio::test]
async fn registers_tasks_and_workflows_as_the_create_rpcs_do() {
    let mut server = launch_support::start().await;
    let registration = RegistrationService::new(server.state.clone());
    let request = admin_support::task_request("t", "v1");
    let task = RegisterTask {
        id: request.id.clone().unwrap(),
        spec: request.spec.clone().unwrap(),
        raw_spec: None,
    };
    registration.register_task(task.clone()).await.unwrap();
    let stored = server
        .admin
        .get_task(admin_support::get(&task.id))
        .await
        .unwrap()
        .into_inner();
    let template = stored.closure.unwrap().compiled_task.unwrap().template;
    assert_eq!(template, task.spec.template);
    // The same content again: ALREADY_EXISTS, which flytekit counts as success.
    let again = registration.register_task(task.clone()).await.unwrap_err();
    assert!(matches!(again, AdminError::AlreadyExists(_)), "{again:?}");

    // A workflow calling a task that is not registered is refused by name.
    let missing = admin_support::id(flyteidl::core::ResourceType::Task, "nope", "v1");
    let request = admin_support::workflow_request("wf", "v1", &missing, "n0");
    let workflow = RegisterWorkflow {
        id: request.id.clone().unwrap(),
        spec: request.spec.clone().unwrap(),
        raw_spec: None,
    };
    let err = registration.register_workflow(workflow).await.unwrap_err();
    match err {
        AdminError::InvalidArgument(m) => {
            assert!(m.contains("nope") && m.contains("not registered"), "{m}")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn signals_are_created_set_checked_and_listed() {
    let server = with_execution().await;
    let signals = SignalService::new(server.state.clone());
    let key = SignalKey {
        execution: execution("run"),
        signal_id: "approve".into(),
    };
    let int_type = admin_support::int();
    let created = signals
        .get_or_create(GetOrCreateSignal {
            key: key.clone(),
            signal_type: int_type.clone(),
        })
        .await
        .unwrap();
    assert_eq!(created.value, None);
    assert_eq!(created.r#type, Some(int_type.clone()));

    // A value of another type is refused, naming both types.
    let primitive = flyteidl::core::Primitive {
        value: Some(flyteidl::core::primitive::Value::StringValue("yes".into())),
    };
    let scalar = flyteidl::core::Scalar {
        value: Some(flyteidl::core::scalar::Value::Primitive(primitive)),
    };
    let text = flyteidl::core::Literal {
        value: Some(flyteidl::core::literal::Value::Scalar(Box::new(scalar))),
        ..Default::default()
    };
    let err = signals
        .set(SetSignal {
            key: key.clone(),
            value: text,
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AdminError::InvalidArgument(m) if m.contains("expected")),
        "{err:?}"
    );

    signals
        .set(SetSignal {
            key: key.clone(),
            value: int_lit(7),
        })
        .await
        .unwrap();
    // Setting wakes the gate through the launcher.
    let woken = server.launcher.signals.lock().unwrap().clone();
    assert_eq!(woken.len(), 1);
    assert_eq!(woken[0].0.name, "run");
    assert_eq!(woken[0].1, "approve");

    let read = signals
        .get_or_create(GetOrCreateSignal {
            key: key.clone(),
            signal_type: int_type.clone(),
        })
        .await
        .unwrap();
    assert_eq!(read.value, Some(int_lit(7)));
    // Asked for with another type: ALREADY_EXISTS.
    let other = flyteidl::core::LiteralType {
        r#type: Some(literal_type::Type::Simple(
            flyteidl::core::SimpleType::String as i32,
        )),
        ..Default::default()
    };
    let err = signals
        .get_or_create(GetOrCreateSignal {
            key: key.clone(),
            signal_type: other,
        })
        .await
        .unwrap_err();
    assert!(matches!(err, AdminError::AlreadyExists(_)), "{err:?}");

    let listed = signals
        .list(ListSignals {
            execution: execution("run"),
            query: ListQuery {
                limit: 10,
                ..Default::default()
            },
        })
        .await
        .unwrap();
    assert_eq!(listed.signals.len(), 1);
    assert_eq!(listed.signals[0].value, Some(int_lit(7)));

    // An execution that does not exist: NOT_FOUND, for every command.
    let unknown = SignalKey {
        execution: execution("nope"),
        signal_id: "approve".into(),
    };
    let err = signals
        .set(SetSignal {
            key: unknown.clone(),
            value: int_lit(1),
        })
        .await
        .unwrap_err();
    assert!(matches!(err, AdminError::NotFound(_)), "{err:?}");
    let err = signals
        .get_or_create(GetOrCreateSignal {
            key: unknown,
            signal_type: int_type,
        })
        .await
        .unwrap_err();
    assert!(matches!(err, AdminError::NotFound(_)), "{err:?}");
}

fn workflow_event(name: &str, phase: workflow_execution::Phase) -> WorkflowExecutionEvent {
    WorkflowExecutionEvent {
        execution_id: Some(WorkflowExecutionIdentifier {
            project: PROJECT.into(),
            domain: DOMAIN.into(),
            name: name.into(),
            ..Default::default()
        }),
        phase: phase as i32,
        occurred_at: Some(to_proto(chrono::Utc::now())),
        ..Default::default()
    }
}

#[tokio::test]
async fn events_follow_the_phase_rules() {
    let server = with_execution().await;
    let events = EventService::new(server.state.clone());
    events
        .workflow_event(&workflow_event("run", workflow_execution::Phase::Running))
        .await
        .unwrap();
    let record = server
        .state
        .store
        .get_execution(&execution("run"))
        .await
        .unwrap();
    assert_eq!(record.phase, "RUNNING");

    // The same phase again: refused as a duplicate, which a producer counts as success.
    let dup = events
        .workflow_event(&workflow_event("run", workflow_execution::Phase::Running))
        .await
        .unwrap_err();
    assert!(
        matches!(dup, EventError::Rejected(Rejection::AlreadyExists(_))),
        "{dup:?}"
    );
    assert!(dup.is_benign());

    // Back to QUEUED from RUNNING: an invalid transition, not benign.
    let back = events
        .workflow_event(&workflow_event("run", workflow_execution::Phase::Queued))
        .await
        .unwrap_err();
    assert!(!back.is_benign(), "{back:?}");
    let record = server
        .state
        .store
        .get_execution(&execution("run"))
        .await
        .unwrap();
    assert_eq!(record.phase, "RUNNING");

    // An execution that does not exist.
    let err = events
        .workflow_event(&workflow_event("nope", workflow_execution::Phase::Running))
        .await
        .unwrap_err();
    assert!(
        matches!(err, EventError::Rejected(Rejection::NotFound(_))),
        "{err:?}"
    );
}
