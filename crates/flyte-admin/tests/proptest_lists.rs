//! Property tests of list requests end to end (docs/fuzzing.md): filters in Flyte's grammar,
//! sort keys, limits and tokens, sent over gRPC to a real AdminService on SQLite.
//!
//! - Any filter string, sort key, direction, limit and token, on every list RPC: the answer is
//!   a page or INVALID_ARGUMENT / NOT_FOUND with a message, never INTERNAL or UNKNOWN (a bad
//!   filter is the caller's fault, whatever the store makes of it).
//! - `value_in(name,…)` with any sort key and direction lists exactly the matching tasks, in
//!   order; walking the pages with the tokens yields the same list, without repeats.

mod admin_support;

use std::collections::BTreeSet;

use admin_support::{DOMAIN, PROJECT, TestServer, start, task_request};
use flyteidl::admin::{
    NamedEntityIdentifier, NamedEntityIdentifierListRequest, NamedEntityListRequest,
    NodeExecutionListRequest, ProjectListRequest, ResourceListRequest, Sort, Task,
};
use flyteidl::core::{ResourceType, WorkflowExecutionIdentifier};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner, contextualize_config};
use tokio::runtime::Runtime;

/// Registered task names: quotes, `%` and `_` (LIKE wildcards) and non-ASCII included.
const NAMES: &[&str] = &["wf.a", "wf.b", "it's", "100%_x", "ünï"];
const VERSIONS: &[&str] = &["v1", "v2"];

const FIELDS: &[&str] = &[
    "name",
    "version",
    "created_at",
    "updated_at",
    "project",
    "domain",
    "state",
    "phase",
    "node_id",
    "identifier",
    "resource_type",
    "duration",
    "started_at",
    "user",
    "mode",
    "retry_attempt",
];

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(NAMES).prop_map(str::to_string),
        prop::sample::select(VERSIONS).prop_map(str::to_string),
        Just("2024-01-01T00:00:00Z".to_string()),
        Just("2024-01-01T00:00:00.123456789+02:00".to_string()),
        Just("2024-13-45".to_string()),
        Just("0".to_string()),
        Just("-1".to_string()),
        Just("99999999999999999999".to_string()),
        Just("SUCCEEDED".to_string()),
        Just("1.5".to_string()),
        Just("'; DROP TABLE entities; --".to_string()),
        Just("%".to_string()),
        Just("a;b;;c".to_string()),
        "[a-z%_'\"\\\\]{0,5}",
        any::<String>().prop_map(|s| s.chars().filter(|c| !",+".contains(*c)).take(8).collect()),
    ]
}

fn expression() -> impl Strategy<Value = String> {
    let op = prop::sample::select(
        &[
            "eq",
            "ne",
            "gt",
            "gte",
            "lt",
            "lte",
            "contains",
            "value_in",
            "value_not_in",
            "not_like",
            "like",
        ][..],
    );
    let prefix = prop::sample::select(&["", "task.", "workflow.", "execution.", "project."][..]);
    (op, prefix, prop::sample::select(FIELDS), value())
        .prop_map(|(op, prefix, field, value)| format!("{op}({prefix}{field},{value})"))
}

fn filters() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => prop::collection::vec(expression(), 0..3).prop_map(|e| e.join("+")),
        1 => any::<String>(),
    ]
}

fn sort() -> impl Strategy<Value = Option<Sort>> {
    prop::option::of((
        prop_oneof![4 => prop::sample::select(FIELDS).prop_map(str::to_string), 1 => any::<String>()],
        -1i32..3,
    ))
    .prop_map(|s| s.map(|(key, direction)| Sort { key, direction }))
}

fn limit() -> impl Strategy<Value = u32> {
    prop_oneof![8 => 0u32..30, 1 => Just(u32::MAX)]
}

fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => Just(String::new()),
        1 => Just("1".to_string()),
        1 => Just("-1".to_string()),
        1 => Just("18446744073709551615".to_string()),
        1 => Just("9223372036854775807".to_string()),
        1 => "[a-z0-9]{0,4}",
    ]
}

#[derive(Debug, Clone)]
struct Params {
    rpc: u8,
    filters: String,
    sort_by: Option<Sort>,
    limit: u32,
    token: String,
    name: String,
}

fn params() -> impl Strategy<Value = Params> {
    (
        0u8..9,
        filters(),
        sort(),
        limit(),
        token(),
        prop_oneof![3 => Just(String::new()), 1 => prop::sample::select(NAMES).prop_map(str::to_string)],
    )
        .prop_map(|(rpc, filters, sort_by, limit, token, name)| Params {
            rpc,
            filters,
            sort_by,
            limit,
            token,
            name,
        })
}

/// Sends one list request; `Ok(())` for a page, the status otherwise.
async fn list(server: &TestServer, p: &Params) -> Result<(), tonic::Status> {
    let mut c = server.client.clone();
    let resource = ResourceListRequest {
        id: Some(NamedEntityIdentifier {
            project: PROJECT.into(),
            domain: DOMAIN.into(),
            name: p.name.clone(),
            ..Default::default()
        }),
        limit: p.limit,
        token: p.token.clone(),
        filters: p.filters.clone(),
        sort_by: p.sort_by.clone(),
    };
    let ids = NamedEntityIdentifierListRequest {
        project: PROJECT.into(),
        domain: DOMAIN.into(),
        limit: p.limit,
        token: p.token.clone(),
        sort_by: p.sort_by.clone(),
        filters: p.filters.clone(),
        ..Default::default()
    };
    match p.rpc {
        0 => c.list_tasks(resource).await.map(drop),
        1 => c.list_workflows(resource).await.map(drop),
        2 => c.list_launch_plans(resource).await.map(drop),
        3 => c.list_executions(resource).await.map(drop),
        4 => c.list_task_ids(ids).await.map(drop),
        5 => c
            .list_named_entities(NamedEntityListRequest {
                resource_type: ResourceType::Task as i32,
                project: PROJECT.into(),
                domain: DOMAIN.into(),
                limit: p.limit,
                token: p.token.clone(),
                sort_by: p.sort_by.clone(),
                filters: p.filters.clone(),
                ..Default::default()
            })
            .await
            .map(drop),
        6 => c
            .list_projects(ProjectListRequest {
                limit: p.limit,
                token: p.token.clone(),
                filters: p.filters.clone(),
                sort_by: p.sort_by.clone(),
                ..Default::default()
            })
            .await
            .map(drop),
        7 => c
            .list_node_executions(NodeExecutionListRequest {
                workflow_execution_id: Some(WorkflowExecutionIdentifier {
                    project: PROJECT.into(),
                    domain: DOMAIN.into(),
                    name: "e1".into(),
                    ..Default::default()
                }),
                limit: p.limit,
                token: p.token.clone(),
                filters: p.filters.clone(),
                sort_by: p.sort_by.clone(),
                ..Default::default()
            })
            .await
            .map(drop),
        _ => c.list_workflow_ids(ids).await.map(drop),
    }
}

/// A runner with `cases` by default, `PROPTEST_CASES` when set.
fn runner(cases: u32) -> TestRunner {
    TestRunner::new(contextualize_config(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }))
}

fn with_server(f: impl FnOnce(&Runtime, &TestServer)) {
    let rt = Runtime::new().expect("runtime");
    let server = rt.block_on(async {
        let server = start().await;
        let mut c = server.client.clone();
        for name in NAMES {
            for version in VERSIONS {
                c.create_task(task_request(name, version))
                    .await
                    .expect("register");
            }
        }
        server
    });
    f(&rt, &server);
}

#[test]
fn any_list_request_is_answered_or_refused_as_the_callers_fault() {
    with_server(|rt, server| {
        let result = runner(256).run(&params(), |p| {
            match rt.block_on(list(server, &p)) {
                Ok(()) => {}
                Err(status) => {
                    prop_assert!(
                        matches!(
                            status.code(),
                            tonic::Code::InvalidArgument | tonic::Code::NotFound
                        ),
                        "{p:?}: {status:?}"
                    );
                    prop_assert!(!status.message().is_empty());
                }
            }
            Ok(())
        });
        if let Err(e) = result {
            panic!("{e}");
        }
    });
}

fn key_of(t: &Task, key: &str) -> (String, i64, i32) {
    let id = t.id.as_ref().expect("id");
    match key {
        "name" => (id.name.clone(), 0, 0),
        "version" => (id.version.clone(), 0, 0),
        _ => {
            let ts = t
                .closure
                .as_ref()
                .and_then(|c| c.created_at.as_ref())
                .expect("created_at");
            (String::new(), ts.seconds, ts.nanos)
        }
    }
}

#[test]
fn value_in_lists_exactly_the_matching_tasks_in_order_across_pages() {
    with_server(|rt, server| {
        let strategy = (
            prop::collection::btree_set(
                prop_oneof![prop::sample::select(NAMES), Just("nope")],
                1..4,
            ),
            prop::sample::select(&["name", "version", "created_at", "updated_at"][..]),
            0i32..2,
            1u32..5,
        );
        let result = runner(32).run(&strategy, |(names, key, direction, page)| {
            let filters = format!(
                "value_in(name,{})",
                names.iter().copied().collect::<Vec<_>>().join(";")
            );
            let sort_by = Some(Sort {
                key: key.into(),
                direction,
            });
            let request = |limit: u32, token: String| ResourceListRequest {
                id: Some(NamedEntityIdentifier {
                    project: PROJECT.into(),
                    domain: DOMAIN.into(),
                    ..Default::default()
                }),
                limit,
                token,
                filters: filters.clone(),
                sort_by: sort_by.clone(),
            };
            let mut c = server.client.clone();
            let all = rt
                .block_on(c.list_tasks(request(100, String::new())))
                .map_err(|s| TestCaseError::fail(format!("{s:?}")))?
                .into_inner();
            prop_assert_eq!(&all.token, "");
            let listed: Vec<(String, String)> = all
                .tasks
                .iter()
                .map(|t| {
                    let id = t.id.as_ref().expect("id");
                    (id.name.clone(), id.version.clone())
                })
                .collect();
            let expected: BTreeSet<(String, String)> = NAMES
                .iter()
                .filter(|n| names.contains(*n))
                .flat_map(|n| VERSIONS.iter().map(|v| (n.to_string(), v.to_string())))
                .collect();
            prop_assert_eq!(listed.iter().cloned().collect::<BTreeSet<_>>(), expected);
            prop_assert_eq!(listed.len(), all.tasks.len(), "no duplicates");
            // Sorted by the key in the direction asked.
            let keys: Vec<_> = all.tasks.iter().map(|t| key_of(t, key)).collect();
            let ascending = direction == flyteidl::admin::sort::Direction::Ascending as i32;
            for pair in keys.windows(2) {
                if ascending {
                    prop_assert!(pair[0] <= pair[1], "{key} ascending: {keys:?}");
                } else {
                    prop_assert!(pair[0] >= pair[1], "{key} descending: {keys:?}");
                }
            }
            // The same list, page by page.
            let mut paged = Vec::new();
            let mut token = String::new();
            for _ in 0..=listed.len() {
                let resp = rt
                    .block_on(c.list_tasks(request(page, token)))
                    .map_err(|s| TestCaseError::fail(format!("{s:?}")))?
                    .into_inner();
                paged.extend(resp.tasks.iter().map(|t| {
                    let id = t.id.as_ref().expect("id");
                    (id.name.clone(), id.version.clone())
                }));
                token = resp.token;
                if token.is_empty() {
                    break;
                }
            }
            prop_assert_eq!(paged, listed);
            Ok(())
        });
        if let Err(e) = result {
            panic!("{e}");
        }
    });
}
