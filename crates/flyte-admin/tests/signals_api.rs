//! SignalService over the real router (gRPC and the REST gateway) with SQLite: signals are
//! created by GetOrCreateSignal, listed, set with type checking (the engine is told), and bad
//! requests get specific codes.

mod admin_support;
mod launch_support;

use flyteidl::admin::*;
use flyteidl::core::{SignalIdentifier, SimpleType};
use launch_support::*;
use tonic::Code;

fn sid(exec: &str, signal: &str) -> SignalIdentifier {
    SignalIdentifier {
        signal_id: signal.into(),
        execution_id: Some(exec_id(exec)),
    }
}

fn get_or_create(exec: &str, signal: &str, t: SimpleType) -> SignalGetOrCreateRequest {
    SignalGetOrCreateRequest {
        id: Some(sid(exec, signal)),
        r#type: Some(simple(t)),
    }
}

fn set(exec: &str, signal: &str, value: flyteidl::core::Literal) -> SignalSetRequest {
    SignalSetRequest {
        id: Some(sid(exec, signal)),
        value: Some(value),
    }
}

fn list(exec: &str, limit: u32) -> SignalListRequest {
    SignalListRequest {
        workflow_execution_id: Some(exec_id(exec)),
        limit,
        ..Default::default()
    }
}

/// A server with one (queued) execution `run1`.
async fn server_with_execution() -> Server {
    let mut s = start().await;
    let (_, _, lp) = admin_support::register_all(&mut s.admin, "v1").await;
    s.admin
        .create_execution(create_request(&lp, "run1", map(&[("x", int_lit(1))])))
        .await
        .unwrap();
    s
}

#[tokio::test]
async fn signals_are_created_listed_and_set() {
    let mut s = server_with_execution().await;

    // Created on first ask, with its type and no value; asked again, the same signal.
    let created = s
        .signals
        .get_or_create_signal(get_or_create("run1", "approve-1", SimpleType::Boolean))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.id, Some(sid("run1", "approve-1")));
    assert_eq!(created.r#type, Some(simple(SimpleType::Boolean)));
    assert_eq!(created.value, None);
    let again = s
        .signals
        .get_or_create_signal(get_or_create("run1", "approve-1", SimpleType::Boolean))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again, created);
    s.signals
        .get_or_create_signal(get_or_create("run1", "count", SimpleType::Integer))
        .await
        .unwrap();

    // Listed newest first, paged, filtered.
    let all = s
        .signals
        .list_signals(list("run1", 100))
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<_> = all
        .signals
        .iter()
        .map(|s| s.id.as_ref().unwrap().signal_id.as_str())
        .collect();
    assert_eq!(ids, ["count", "approve-1"]);
    assert!(all.token.is_empty());
    let first = s
        .signals
        .list_signals(list("run1", 1))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.signals.len(), 1);
    assert!(!first.token.is_empty());
    let second = s
        .signals
        .list_signals(SignalListRequest {
            token: first.token.clone(),
            ..list("run1", 1)
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        second.signals[0].id.as_ref().unwrap().signal_id,
        "approve-1"
    );
    let filtered = s
        .signals
        .list_signals(SignalListRequest {
            filters: "eq(signal_id,count)".into(),
            ..list("run1", 10)
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(filtered.signals.len(), 1);
    assert_eq!(
        filtered.signals[0].r#type,
        Some(simple(SimpleType::Integer))
    );

    // Set (as FlyteRemote.approve does): the value is kept and the engine is told.
    s.signals
        .set_signal(set("run1", "approve-1", bool_lit(true)))
        .await
        .unwrap();
    s.signals
        .set_signal(set("run1", "count", int_lit(42)))
        .await
        .unwrap();
    let read = s
        .signals
        .get_or_create_signal(get_or_create("run1", "approve-1", SimpleType::Boolean))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(read.value, Some(bool_lit(true)));
    assert_eq!(
        *s.launcher.signals.lock().unwrap(),
        [
            (exec_id("run1"), "approve-1".to_string()),
            (exec_id("run1"), "count".to_string())
        ]
    );

    // Setting again replaces the value (flyteadmin's Update does).
    s.signals
        .set_signal(set("run1", "approve-1", bool_lit(false)))
        .await
        .unwrap();
    let listed = s
        .signals
        .list_signals(SignalListRequest {
            filters: "eq(signal_id,approve-1)".into(),
            ..list("run1", 10)
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.signals[0].value, Some(bool_lit(false)));

    // The REST gateway serves the same service.
    let resp = s
        .http
        .get(format!(
            "{}/api/v1/signals/{PROJECT}/{DOMAIN}/run1?limit=10",
            s.base
        ))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    let signals = body["signals"].as_array().unwrap();
    assert_eq!(signals.len(), 2, "{body}");
    let resp = s
        .http
        .post(format!("{}/api/v1/signals", s.base))
        .json(&serde_json::json!({
            "id": {
                "signal_id": "count",
                "execution_id": {"project": PROJECT, "domain": DOMAIN, "name": "run1"}
            },
            "value": {"scalar": {"primitive": {"integer": "7"}}}
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    let read = s
        .signals
        .get_or_create_signal(get_or_create("run1", "count", SimpleType::Integer))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(read.value, Some(int_lit(7)));
}

#[tokio::test]
async fn a_value_of_the_wrong_type_is_invalid_argument() {
    let mut s = server_with_execution().await;
    s.signals
        .get_or_create_signal(get_or_create("run1", "count", SimpleType::Integer))
        .await
        .unwrap();
    s.signals
        .get_or_create_signal(get_or_create("run1", "approve", SimpleType::Boolean))
        .await
        .unwrap();

    let err = s
        .signals
        .set_signal(set("run1", "count", str_lit("seven")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("'count'"), "{}", err.message());
    assert!(
        err.message().contains("expected int, but got str"),
        "{}",
        err.message()
    );
    let err = s
        .signals
        .set_signal(set("run1", "approve", int_lit(1)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(
        err.message().contains("expected bool, but got int"),
        "{}",
        err.message()
    );
    // Nothing was stored, and the engine was not woken.
    let read = s
        .signals
        .get_or_create_signal(get_or_create("run1", "count", SimpleType::Integer))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(read.value, None);
    assert!(s.launcher.signals.lock().unwrap().is_empty());

    // The same signal asked for with another type.
    let err = s
        .signals
        .get_or_create_signal(get_or_create("run1", "count", SimpleType::String))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");
    assert!(
        err.message().contains("type int") && err.message().contains("type str"),
        "{}",
        err.message()
    );

    // Over REST: 400, as grpc-gateway maps INVALID_ARGUMENT.
    let resp = s
        .http
        .post(format!("{}/api/v1/signals", s.base))
        .json(&serde_json::json!({
            "id": {
                "signal_id": "count",
                "execution_id": {"project": PROJECT, "domain": DOMAIN, "name": "run1"}
            },
            "value": {"scalar": {"primitive": {"boolean": true}}}
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}

#[tokio::test]
async fn unknown_signals_and_executions_are_not_found() {
    let mut s = server_with_execution().await;

    let err = s
        .signals
        .set_signal(set("run1", "nope", bool_lit(true)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    assert!(
        err.message().contains("signal 'nope'") && err.message().contains("run1"),
        "{}",
        err.message()
    );

    let err = s
        .signals
        .set_signal(set("ghost", "approve", bool_lit(true)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    assert!(
        err.message()
            .contains(&format!("execution {PROJECT}/{DOMAIN}/ghost not found")),
        "{}",
        err.message()
    );

    let err = s
        .signals
        .get_or_create_signal(get_or_create("ghost", "approve", SimpleType::Boolean))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    assert!(err.message().contains("ghost"), "{}", err.message());

    let err = s.signals.list_signals(list("ghost", 10)).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
}

#[tokio::test]
async fn requests_are_validated() {
    let mut s = server_with_execution().await;
    let cases: Vec<(SignalGetOrCreateRequest, &str)> = vec![
        (
            SignalGetOrCreateRequest {
                id: None,
                r#type: Some(simple(SimpleType::Boolean)),
            },
            "missing id",
        ),
        (
            get_or_create("run1", "", SimpleType::Boolean),
            "missing id.signal_id",
        ),
        (
            SignalGetOrCreateRequest {
                id: Some(sid("run1", "a")),
                r#type: None,
            },
            "missing type",
        ),
        (
            SignalGetOrCreateRequest {
                id: Some(SignalIdentifier {
                    signal_id: "a".into(),
                    execution_id: Some(flyteidl::core::WorkflowExecutionIdentifier {
                        project: PROJECT.into(),
                        ..Default::default()
                    }),
                }),
                r#type: Some(simple(SimpleType::Boolean)),
            },
            "needs project, domain and name",
        ),
    ];
    for (request, message) in cases {
        let err = s.signals.get_or_create_signal(request).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
        assert!(err.message().contains(message), "{}", err.message());
    }
    let err = s
        .signals
        .set_signal(SignalSetRequest {
            id: Some(sid("run1", "a")),
            value: None,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("missing value"), "{}", err.message());
    let err = s.signals.list_signals(list("run1", 0)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    let err = s
        .signals
        .list_signals(SignalListRequest {
            filters: "eq(value,1)".into(),
            ..list("run1", 10)
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("signal_id"), "{}", err.message());
}
