//! Conformance tests for executions, node and task executions and the engine journal (run
//! on every backend by the `conformance!` macro of the suite).

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use flyte_store::{
    EngineChange, EntityKey, ExecutionKey, ExecutionRecord, ExecutionScope, FilterOp, ListQuery,
    MetadataStore, NodeExecutionKey, NodeExecutionRecord, ResourceType, SortDirection, StateBatch,
    StoreError, TaskExecutionKey, TaskExecutionRecord,
};

use crate::t;
use crate::tests::{D, f, q, sort};

mod races;
pub use races::*;

const P: &str = "flytesnacks";

pub fn ekey(name: &str) -> ExecutionKey {
    ExecutionKey {
        project: P.into(),
        domain: D.into(),
        name: name.into(),
    }
}

fn ent(resource: ResourceType, name: &str, version: &str) -> EntityKey {
    EntityKey {
        resource,
        project: P.into(),
        domain: D.into(),
        name: name.into(),
        version: version.into(),
    }
}

pub fn execution(name: &str, lp: &str, phase: &str, at: DateTime<Utc>) -> ExecutionRecord {
    ExecutionRecord {
        key: ekey(name),
        launch_plan: Some(ent(ResourceType::LaunchPlan, lp, "v1")),
        workflow: Some(ent(ResourceType::Workflow, &format!("{lp}.wf"), "v1")),
        task: None,
        phase: phase.into(),
        mode: 0,
        state: 0,
        principal: "alice".into(),
        parent: None,
        spec: vec![1, 2, 0, 3],
        closure: format!("closure {name}").into_bytes(),
        inputs_uri: format!("s3://b/metadata/{name}/inputs"),
        user_inputs_uri: format!("s3://b/metadata/{name}/user_inputs"),
        created_at: at,
        updated_at: at,
        started_at: None,
        error_code: String::new(),
        duration_ms: 0,
        tags: Vec::new(),
        notify_phases: flyte_store::NOTIFY_PHASES.map(String::from).to_vec(),
    }
}

fn node(
    exec: &str,
    node_id: &str,
    parent: Option<&str>,
    phase: &str,
    at: DateTime<Utc>,
) -> NodeExecutionRecord {
    NodeExecutionRecord {
        key: NodeExecutionKey {
            execution: ekey(exec),
            node_id: node_id.into(),
        },
        parent_node_id: parent.map(str::to_owned),
        phase: phase.into(),
        closure: format!("closure {node_id} {phase}").into_bytes(),
        metadata: vec![8, 1],
        input_uri: format!("s3://b/{exec}/{node_id}/data/inputs.pb"),
        dynamic_workflow: None,
        created_at: at,
        updated_at: at,
        started_at: None,
        retry_group: String::new(),
    }
}

fn task_exec(
    exec: &str,
    node_id: &str,
    attempt: u32,
    phase: &str,
    version: u32,
    at: DateTime<Utc>,
) -> TaskExecutionRecord {
    TaskExecutionRecord {
        key: TaskExecutionKey {
            node: NodeExecutionKey {
                execution: ekey(exec),
                node_id: node_id.into(),
            },
            task: ent(ResourceType::Task, "my.task", "v1"),
            retry_attempt: attempt,
        },
        phase: phase.into(),
        phase_version: version,
        closure: format!("task closure {phase} {version}").into_bytes(),
        created_at: at,
        updated_at: at,
        started_at: Some(at),
    }
}

fn names(page: &flyte_store::Page<ExecutionRecord>) -> Vec<String> {
    page.items.iter().map(|e| e.key.name.clone()).collect()
}

fn scope() -> ExecutionScope {
    ExecutionScope {
        project: P.into(),
        domain: D.into(),
        name: None,
        top_level_only: false,
    }
}

pub async fn execution_create_get_duplicate(store: Arc<dyn MetadataStore>) {
    let mut e = execution("a1", "lp", "QUEUED", t(1));
    e.task = Some(ent(ResourceType::Task, "t", "v9"));
    e.parent = Some(NodeExecutionKey {
        execution: ekey("parent"),
        node_id: "n0".into(),
    });
    store.create_execution(e.clone(), None).await.unwrap();
    assert_eq!(store.get_execution(&e.key).await.unwrap(), e);

    let err = store.create_execution(e.clone(), None).await.unwrap_err();
    assert!(
        matches!(err, StoreError::AlreadyExists(ref w) if w.contains("a1")),
        "{err}"
    );

    let mut other = execution("a2", "lp", "QUEUED", t(1));
    other.key.project = "nope".into();
    let err = store.create_execution(other, None).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");

    // An archived project takes no new execution, whether the name is new or taken; nothing
    // of the refused one is stored, and it takes them again once restored.
    let mut archived = crate::tests::project("old", t(1));
    store.create_project(archived.clone()).await.unwrap();
    let mut first = execution("o1", "lp", "QUEUED", t(1));
    first.key.project = "old".into();
    store.create_execution(first.clone(), None).await.unwrap();
    archived.state = 1;
    store.update_project(archived.clone()).await.unwrap();
    let mut refused = first.clone();
    refused.key.name = "o2".into();
    for e in [first.clone(), refused.clone()] {
        let err = store
            .create_execution(e, Some(b"request".to_vec()))
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::InvalidArgument(ref m) if m.contains("archived")),
            "{err}"
        );
    }
    assert!(matches!(
        store.get_execution(&refused.key).await,
        Err(StoreError::NotFound(_))
    ));
    archived.state = 0;
    store.update_project(archived).await.unwrap();
    store.create_execution(refused.clone(), None).await.unwrap();
    assert_eq!(store.get_execution(&refused.key).await.unwrap(), refused);

    let err = store.get_execution(&ekey("missing")).await.unwrap_err();
    assert!(
        matches!(err, StoreError::NotFound(ref w) if w.contains("missing")),
        "{err}"
    );

    // Updates replace the mutable columns and keep the rest.
    let mut updated = e.clone();
    updated.phase = "RUNNING".into();
    updated.closure = b"running".to_vec();
    updated.state = 1;
    updated.updated_at = t(5);
    updated.started_at = Some(t(4));
    store
        .apply(StateBatch {
            executions: vec![updated.clone()],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(store.get_execution(&e.key).await.unwrap(), updated);

    let err = store
        .apply(StateBatch {
            executions: vec![execution("missing", "lp", "RUNNING", t(1))],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");
}

pub async fn execution_list_filters_sort_pages(store: Arc<dyn MetadataStore>) {
    let phases = ["SUCCEEDED", "RUNNING", "FAILED", "RUNNING", "QUEUED"];
    for (i, phase) in phases.iter().enumerate() {
        let lp = if i % 2 == 0 { "lp.even" } else { "lp.odd" };
        let mut e = execution(&format!("e{i}"), lp, phase, t(i as i64));
        e.mode = (i % 3) as i32;
        store.create_execution(e, None).await.unwrap();
    }
    let mut child = execution("child", "lp.even", "RUNNING", t(10));
    child.parent = Some(NodeExecutionKey {
        execution: ekey("e0"),
        node_id: "n1".into(),
    });
    store.create_execution(child, None).await.unwrap();

    let all = store.list_executions(&scope(), &q(100)).await.unwrap();
    assert_eq!(names(&all), ["child", "e4", "e3", "e2", "e1", "e0"]);
    let top = ExecutionScope {
        top_level_only: true,
        ..scope()
    };
    let all = store.list_executions(&top, &q(100)).await.unwrap();
    assert_eq!(names(&all), ["e4", "e3", "e2", "e1", "e0"]);

    let mut query = q(100);
    query.filters = vec![f("phase", FilterOp::Eq, &["RUNNING"])];
    assert_eq!(
        names(&store.list_executions(&top, &query).await.unwrap()),
        ["e3", "e1"]
    );
    query.filters = vec![
        f("phase", FilterOp::ValueIn, &["SUCCEEDED", "FAILED"]),
        f("launch_plan_name", FilterOp::Eq, &["lp.even"]),
    ];
    assert_eq!(
        names(&store.list_executions(&top, &query).await.unwrap()),
        ["e2", "e0"]
    );
    query.filters = vec![
        f("workflow_name", FilterOp::Contains, &["odd"]),
        f("mode", FilterOp::Eq, &["1"]),
    ];
    assert_eq!(
        names(&store.list_executions(&top, &query).await.unwrap()),
        ["e1"]
    );
    query.filters = vec![f("created_at", FilterOp::Gte, &["2024-01-01T00:02:00Z"])];
    query.sort = sort("created_at", SortDirection::Ascending);
    assert_eq!(
        names(&store.list_executions(&top, &query).await.unwrap()),
        ["e2", "e3", "e4"]
    );
    query.filters = vec![];
    query.sort = sort("name", SortDirection::Ascending);
    query.limit = 2;
    let p1 = store.list_executions(&top, &query).await.unwrap();
    assert_eq!(names(&p1), ["e0", "e1"]);
    query.token = p1.next_token.clone();
    let p2 = store.list_executions(&top, &query).await.unwrap();
    assert_eq!(names(&p2), ["e2", "e3"]);
    query.token = p2.next_token.clone();
    let p3 = store.list_executions(&top, &query).await.unwrap();
    assert_eq!(names(&p3), ["e4"]);
    assert!(p3.next_token.is_empty());

    let named = ExecutionScope {
        name: Some("e2".into()),
        ..scope()
    };
    assert_eq!(
        names(&store.list_executions(&named, &q(10)).await.unwrap()),
        ["e2"]
    );

    let mut bad = q(10);
    bad.filters = vec![f("closure", FilterOp::Eq, &["x"])];
    let err = store.list_executions(&scope(), &bad).await.unwrap_err();
    assert!(
        matches!(err, StoreError::InvalidArgument(ref m) if m.contains("phase")),
        "{err}"
    );
}

/// flyteadmin's execution filters beyond the columns: tags (`admin_tag`), the error code and
/// the duration (seconds in filters, milliseconds stored).
/// A dynamic node's children keep the attempt they were made under, and lists filter on it
/// in the query: a page of one attempt's children is full until the last.
pub async fn node_children_by_retry_group(store: Arc<dyn MetadataStore>) {
    store
        .create_execution(execution("dy", "lp", "RUNNING", t(0)), None)
        .await
        .unwrap();
    let mut nodes = vec![node("dy", "n0", None, "RUNNING", t(0))];
    // Attempt 0 made 5 children, attempt 1 made 4, interleaved in time.
    for i in 0..9 {
        let attempt = i % 2;
        let mut n = node(
            "dy",
            &format!("n0-{attempt}-dn{i}"),
            Some("n0"),
            "SUCCEEDED",
            t(i + 1),
        );
        n.retry_group = attempt.to_string();
        nodes.push(n);
    }
    store
        .apply(StateBatch {
            node_executions: nodes,
            ..Default::default()
        })
        .await
        .unwrap();
    let read = store
        .get_node_execution(&NodeExecutionKey {
            execution: ekey("dy"),
            node_id: "n0-1-dn1".into(),
        })
        .await
        .unwrap();
    assert_eq!(read.retry_group, "1");
    let mut query = q(2);
    query.sort = sort("created_at", SortDirection::Ascending);
    query.filters = vec![f("retry_group", FilterOp::ValueIn, &["", "1"])];
    let mut pages = Vec::new();
    loop {
        let page = store
            .list_node_executions(&ekey("dy"), Some("n0"), &query)
            .await
            .unwrap();
        pages.push(
            page.items
                .iter()
                .map(|n| n.key.node_id.clone())
                .collect::<Vec<_>>(),
        );
        if page.next_token.is_empty() {
            break;
        }
        query.token = page.next_token;
    }
    assert_eq!(
        pages,
        [vec!["n0-1-dn1", "n0-1-dn3"], vec!["n0-1-dn5", "n0-1-dn7"],]
    );
}

/// A page of node executions carries no dynamic workflow: a 100,000-node `@dynamic` node's
/// compiled workflow is ~20 MB, and the console lists the top level on every refresh. It is
/// read with the node alone (`get_node_execution`, what GetNodeExecutionData serves).
pub async fn node_lists_leave_out_the_dynamic_workflow(store: Arc<dyn MetadataStore>) {
    store
        .create_execution(execution("dw", "lp", "RUNNING", t(0)), None)
        .await
        .unwrap();
    let mut n0 = node("dw", "n0", None, "RUNNING", t(0));
    n0.dynamic_workflow = Some(vec![7; 4096]);
    let child = node("dw", "n0-0-dn0", Some("n0"), "SUCCEEDED", t(1));
    store
        .apply(StateBatch {
            node_executions: vec![n0.clone(), child],
            ..Default::default()
        })
        .await
        .unwrap();
    let top = store
        .list_node_executions(&ekey("dw"), None, &q(100))
        .await
        .unwrap();
    assert_eq!(top.items.len(), 1);
    assert!(
        top.items[0].dynamic_workflow.is_none(),
        "a page of node executions carries the dynamic workflow"
    );
    assert_eq!(top.items[0].closure, n0.closure);
    let got = store.get_node_execution(&n0.key).await.unwrap();
    assert_eq!(got.dynamic_workflow, n0.dynamic_workflow);
}

/// An execution's node and task executions at every depth, in one query each; another
/// execution's are not among them.
pub async fn all_nodes_and_tasks_of_one_execution(store: Arc<dyn MetadataStore>) {
    for name in ["big", "other"] {
        store
            .create_execution(execution(name, "lp", "RUNNING", t(0)), None)
            .await
            .unwrap();
    }
    let mut nodes = vec![
        node("big", "n0", None, "RUNNING", t(1)),
        node("big", "n0-0-dn0", Some("n0"), "RUNNING", t(2)),
        node("big", "n0-0-dn0-0-n1", Some("n0-0-dn0"), "RUNNING", t(3)),
        node("other", "n0", None, "RUNNING", t(1)),
    ];
    nodes.extend((0..600).map(|i| node("big", &format!("m{i}"), None, "SUCCEEDED", t(4))));
    store
        .apply(StateBatch {
            node_executions: nodes,
            task_executions: vec![
                task_exec("big", "n0", 0, "FAILED", 1, t(1)),
                task_exec("big", "n0", 1, "RUNNING", 1, t(2)),
                task_exec("big", "n0-0-dn0-0-n1", 0, "RUNNING", 1, t(3)),
                task_exec("other", "n0", 0, "RUNNING", 1, t(1)),
            ],
            ..Default::default()
        })
        .await
        .unwrap();
    let all = store.get_all_node_executions(&ekey("big")).await.unwrap();
    assert_eq!(all.len(), 603);
    assert!(all.iter().all(|n| n.key.execution == ekey("big")));
    assert!(all.iter().any(|n| n.key.node_id == "n0-0-dn0-0-n1"));
    let mut tasks: Vec<_> = store
        .get_all_task_executions(&ekey("big"))
        .await
        .unwrap()
        .into_iter()
        .map(|t| (t.key.node.node_id, t.key.retry_attempt))
        .collect();
    tasks.sort();
    assert_eq!(
        tasks,
        [
            ("n0".to_owned(), 0),
            ("n0".to_owned(), 1),
            ("n0-0-dn0-0-n1".to_owned(), 0)
        ]
    );
    assert!(
        store
            .get_all_task_executions(&ekey("nope"))
            .await
            .unwrap()
            .is_empty()
    );
}

/// Tags are read back with the execution (sorted, once each), from gets and lists alike.
pub async fn execution_tags_read_back(store: Arc<dyn MetadataStore>) {
    let mut a = execution("a", "lp", "QUEUED", t(0));
    a.tags = vec!["nightly".into(), "team x/ü".into(), "nightly".into()];
    store.create_execution(a, None).await.unwrap();
    store
        .create_execution(execution("b", "lp", "QUEUED", t(1)), None)
        .await
        .unwrap();
    let mut c = execution("c", "lp", "QUEUED", t(2));
    c.tags = vec!["z".into(), "a,b".into()];
    store.create_execution(c, None).await.unwrap();

    let read = store.get_execution(&ekey("a")).await.unwrap();
    assert_eq!(read.tags, ["nightly", "team x/ü"]);
    assert!(
        store
            .get_execution(&ekey("b"))
            .await
            .unwrap()
            .tags
            .is_empty()
    );
    let page = store.list_executions(&scope(), &q(100)).await.unwrap();
    let tags: Vec<(String, Vec<String>)> = page
        .items
        .iter()
        .map(|e| (e.key.name.clone(), e.tags.clone()))
        .collect();
    assert_eq!(
        tags,
        [
            ("c".to_owned(), vec!["a,b".to_owned(), "z".to_owned()]),
            ("b".to_owned(), vec![]),
            (
                "a".to_owned(),
                vec!["nightly".to_owned(), "team x/ü".to_owned()]
            ),
        ]
    );
    // A later write of the execution keeps them.
    let mut done = store.get_execution(&ekey("a")).await.unwrap();
    done.phase = "SUCCEEDED".into();
    done.tags.clear();
    store
        .apply(StateBatch {
            executions: vec![done],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        store.get_execution(&ekey("a")).await.unwrap().tags,
        ["nightly", "team x/ü"]
    );
}

pub async fn execution_tags_error_code_duration(store: Arc<dyn MetadataStore>) {
    let mut a = execution("a", "lp", "QUEUED", t(0));
    a.tags = vec!["nightly".into(), "team-x".into(), "nightly".into()];
    store.create_execution(a, None).await.unwrap();
    let mut b = execution("b", "lp", "QUEUED", t(1));
    b.tags = vec!["team-x".into()];
    store.create_execution(b, None).await.unwrap();
    store
        .create_execution(execution("c", "lp", "QUEUED", t(2)), None)
        .await
        .unwrap();
    // b fails after 90 s, c succeeds after 2.5 s.
    let mut failed = store.get_execution(&ekey("b")).await.unwrap();
    failed.phase = "FAILED".into();
    failed.error_code = "USER:ValueError".into();
    failed.duration_ms = 90_000;
    let mut done = store.get_execution(&ekey("c")).await.unwrap();
    done.phase = "SUCCEEDED".into();
    done.duration_ms = 2_500;
    store
        .apply(StateBatch {
            executions: vec![failed, done],
            ..Default::default()
        })
        .await
        .unwrap();
    let read = store.get_execution(&ekey("b")).await.unwrap();
    assert_eq!(
        (read.error_code.as_str(), read.duration_ms),
        ("USER:ValueError", 90_000)
    );

    let list = |filters: Vec<flyte_store::Filter>| {
        let store = store.clone();
        async move {
            let query = ListQuery { filters, ..q(100) };
            names(&store.list_executions(&scope(), &query).await.unwrap())
        }
    };
    assert_eq!(
        list(vec![f("admin_tag", FilterOp::Eq, &["nightly"])]).await,
        ["a"]
    );
    assert_eq!(
        list(vec![f(
            "admin_tag",
            FilterOp::ValueIn,
            &["nightly", "team-x"]
        )])
        .await,
        ["b", "a"]
    );
    assert_eq!(
        list(vec![f("admin_tag", FilterOp::Ne, &["team-x"])]).await,
        ["c"]
    );
    assert_eq!(
        list(vec![f("error_code", FilterOp::Eq, &["USER:ValueError"])]).await,
        ["b"]
    );
    assert_eq!(
        list(vec![f("duration", FilterOp::Gte, &["60"])]).await,
        ["b"]
    );
    assert_eq!(
        list(vec![f("duration", FilterOp::Lt, &["3"])]).await,
        ["c", "a"]
    );
    let by_duration = store
        .list_executions(
            &scope(),
            &ListQuery {
                sort: sort("duration", SortDirection::Descending),
                ..q(100)
            },
        )
        .await
        .unwrap();
    assert_eq!(names(&by_duration)[0], "b");
    // Tags are not a sort key.
    let err = store
        .list_executions(
            &scope(),
            &ListQuery {
                sort: sort("admin_tag", SortDirection::Ascending),
                ..q(100)
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidArgument(_)), "{err:?}");
}

pub async fn execution_state_batches(store: Arc<dyn MetadataStore>) {
    store
        .create_execution(execution("x", "lp", "QUEUED", t(0)), None)
        .await
        .unwrap();
    let mut running = execution("x", "lp", "RUNNING", t(0));
    running.started_at = Some(t(1));
    running.updated_at = t(1);
    let batch = StateBatch {
        executions: vec![running.clone()],
        node_executions: vec![
            node("x", "start-node", None, "SUCCEEDED", t(1)),
            node("x", "n0", None, "QUEUED", t(1)),
            node("x", "n0", None, "RUNNING", t(1)),
            node("x", "n1", None, "RUNNING", t(2)),
            node("x", "n1-0-n0", Some("n1"), "RUNNING", t(2)),
            node("x", "n1-0-n1", Some("n1"), "QUEUED", t(3)),
        ],
        task_executions: vec![
            task_exec("x", "n0", 0, "RUNNING", 0, t(1)),
            task_exec("x", "n0", 0, "RUNNING", 1, t(1)),
        ],
        engine: vec![],
    };
    store.apply(batch).await.unwrap();
    assert_eq!(store.get_execution(&ekey("x")).await.unwrap(), running);

    // Later record of the same key wins within a batch.
    let n0_key = NodeExecutionKey {
        execution: ekey("x"),
        node_id: "n0".into(),
    };
    assert_eq!(
        store.get_node_execution(&n0_key).await.unwrap().phase,
        "RUNNING"
    );
    let tasks = store
        .get_task_executions_of_nodes(&ekey("x"), &["n0".into(), "n1".into()])
        .await
        .unwrap();
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].phase_version, 1);

    // Upserts keep created_at and replace everything else.
    let mut n0 = node("x", "n0", None, "SUCCEEDED", t(9));
    n0.started_at = Some(t(2));
    n0.dynamic_workflow = Some(vec![7, 7, 7]);
    n0.input_uri = "s3://elsewhere".into();
    let mut attempt1 = task_exec("x", "n0", 1, "SUCCEEDED", 0, t(9));
    attempt1.started_at = None;
    store
        .apply(StateBatch {
            node_executions: vec![n0.clone()],
            task_executions: vec![task_exec("x", "n0", 0, "FAILED", 0, t(8)), attempt1.clone()],
            ..Default::default()
        })
        .await
        .unwrap();
    let got = store.get_node_execution(&n0_key).await.unwrap();
    assert_eq!(
        got,
        NodeExecutionRecord {
            created_at: t(1),
            ..n0
        }
    );
    let got = store.get_task_execution(&attempt1.key).await.unwrap();
    assert_eq!(got, attempt1);
    let mut a0 = attempt1.key.clone();
    a0.retry_attempt = 0;
    let got = store.get_task_execution(&a0).await.unwrap();
    assert_eq!((got.phase.as_str(), got.created_at), ("FAILED", t(1)));

    // Lists: top level vs children, filters, pages.
    let top = store
        .list_node_executions(&ekey("x"), None, &q(100))
        .await
        .unwrap();
    let ids: Vec<_> = top.items.iter().map(|n| n.key.node_id.as_str()).collect();
    assert_eq!(ids, ["n1", "n0", "start-node"]);
    let mut query = q(1);
    query.sort = sort("created_at", SortDirection::Ascending);
    let children = store
        .list_node_executions(&ekey("x"), Some("n1"), &query)
        .await
        .unwrap();
    assert_eq!(children.items[0].key.node_id, "n1-0-n0");
    query.token = children.next_token;
    let children = store
        .list_node_executions(&ekey("x"), Some("n1"), &query)
        .await
        .unwrap();
    assert_eq!(children.items[0].key.node_id, "n1-0-n1");
    assert!(children.next_token.is_empty());
    let mut query = q(100);
    query.filters = vec![f("phase", FilterOp::Eq, &["SUCCEEDED"])];
    let done = store
        .list_node_executions(&ekey("x"), None, &query)
        .await
        .unwrap();
    assert_eq!(done.items.len(), 2);
    let got = store
        .get_node_executions(&ekey("x"), &["n0".into(), "nope".into(), "n1-0-n1".into()])
        .await
        .unwrap();
    assert_eq!(got.len(), 2);

    let tasks = store.list_task_executions(&n0_key, &q(100)).await.unwrap();
    assert_eq!(tasks.items.len(), 2);
    let mut query = q(100);
    query.filters = vec![f("retry_attempt", FilterOp::Eq, &["1"])];
    let tasks = store.list_task_executions(&n0_key, &query).await.unwrap();
    assert_eq!(tasks.items.len(), 1);
    assert_eq!(tasks.items[0].key.retry_attempt, 1);

    // A batch that fails anywhere writes nothing.
    let err = store
        .apply(StateBatch {
            node_executions: vec![node("x", "n5", None, "RUNNING", t(5))],
            task_executions: vec![task_exec("x", "no-such-node", 0, "RUNNING", 0, t(5))],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");
    let missing = NodeExecutionKey {
        execution: ekey("x"),
        node_id: "n5".into(),
    };
    assert!(matches!(
        store.get_node_execution(&missing).await.unwrap_err(),
        StoreError::NotFound(_)
    ));
    let err = store
        .apply(StateBatch {
            node_executions: vec![node("no-such-exec", "n0", None, "RUNNING", t(5))],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::NotFound(ref w) if w.contains("no-such-exec")),
        "{err}"
    );
}

pub async fn engine_journal(store: Arc<dyn MetadataStore>) {
    store
        .create_execution(
            execution("j1", "lp", "QUEUED", t(0)),
            Some(b"request 1".to_vec()),
        )
        .await
        .unwrap();
    store
        .create_execution(execution("j2", "lp", "QUEUED", t(0)), None)
        .await
        .unwrap();
    let state = store.load_engine_state().await.unwrap();
    assert_eq!(state.len(), 1);
    assert_eq!(state[0].execution, ekey("j1"));
    assert_eq!(state[0].request, b"request 1");
    assert_eq!(state[0].workflow, None);
    assert!(state[0].nodes.is_empty());

    // The workflow state needs a started execution.
    let err = store
        .apply(StateBatch {
            engine: vec![EngineChange::Workflow {
                execution: ekey("j2"),
                state: vec![1],
            }],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");

    store
        .apply(StateBatch {
            engine: vec![
                EngineChange::Started {
                    execution: ekey("j2"),
                    request: b"request 2".to_vec(),
                },
                EngineChange::Workflow {
                    execution: ekey("j2"),
                    state: b"wf".to_vec(),
                },
                EngineChange::Node {
                    execution: ekey("j2"),
                    node_id: "n1".into(),
                    state: b"n1 a".to_vec(),
                },
                EngineChange::Node {
                    execution: ekey("j2"),
                    node_id: "n0".into(),
                    state: b"n0".to_vec(),
                },
                EngineChange::Node {
                    execution: ekey("j2"),
                    node_id: "n1".into(),
                    state: b"n1 b".to_vec(),
                },
                EngineChange::PendingAbort {
                    execution: ekey("j1"),
                    cause: "user asked".into(),
                },
                // Unknown to the journal: ignored.
                EngineChange::PendingAbort {
                    execution: ekey("nope"),
                    cause: "x".into(),
                },
            ],
            ..Default::default()
        })
        .await
        .unwrap();
    let state = store.load_engine_state().await.unwrap();
    assert_eq!(state.len(), 2);
    assert_eq!(state[0].pending_abort.as_deref(), Some("user asked"));
    assert_eq!(state[1].workflow.as_deref(), Some(&b"wf"[..]));
    assert_eq!(
        state[1].nodes,
        vec![
            ("n0".to_string(), b"n0".to_vec()),
            ("n1".to_string(), b"n1 b".to_vec())
        ]
    );

    // Re-announcing the start keeps the pending abort; finishing drops everything.
    store
        .apply(StateBatch {
            engine: vec![
                EngineChange::Started {
                    execution: ekey("j1"),
                    request: b"request 1".to_vec(),
                },
                EngineChange::Node {
                    execution: ekey("j2"),
                    node_id: "n2".into(),
                    state: vec![],
                },
                EngineChange::Finished {
                    execution: ekey("j2"),
                },
            ],
            ..Default::default()
        })
        .await
        .unwrap();
    let state = store.load_engine_state().await.unwrap();
    assert_eq!(state.len(), 1);
    assert_eq!(state[0].execution, ekey("j1"));
    assert_eq!(state[0].pending_abort.as_deref(), Some("user asked"));
}

/// One round of a wide fan-out: thousands of node and task upserts in one transaction.
pub async fn large_batches(store: Arc<dyn MetadataStore>) {
    store
        .create_execution(execution("big", "lp", "RUNNING", t(0)), Some(vec![1]))
        .await
        .unwrap();
    let n = 3000;
    let ids: Vec<String> = (0..n).map(|i| format!("n{i}")).collect();
    let at = t(1);
    let batch = |phase: &str, at: DateTime<Utc>| StateBatch {
        node_executions: ids
            .iter()
            .map(|id| node("big", id, None, phase, at))
            .collect(),
        task_executions: ids
            .iter()
            .map(|id| task_exec("big", id, 0, phase, 0, at))
            .collect(),
        engine: ids
            .iter()
            .map(|id| EngineChange::Node {
                execution: ekey("big"),
                node_id: id.clone(),
                state: phase.as_bytes().to_vec(),
            })
            .collect(),
        ..Default::default()
    };
    let start = std::time::Instant::now();
    store.apply(batch("RUNNING", at)).await.unwrap();
    store
        .apply(batch("SUCCEEDED", at + Duration::seconds(1)))
        .await
        .unwrap();
    let elapsed = start.elapsed();
    eprintln!("{} node+task+engine upserts in {elapsed:?}", 4 * n);
    let got = store.get_node_executions(&ekey("big"), &ids).await.unwrap();
    assert_eq!(got.len(), n);
    assert!(
        got.iter()
            .all(|r| r.phase == "SUCCEEDED" && r.created_at == at)
    );
    let tasks = store
        .get_task_executions_of_nodes(&ekey("big"), &ids)
        .await
        .unwrap();
    assert_eq!(tasks.len(), n);
    let state = store.load_engine_state().await.unwrap();
    assert_eq!(state[0].nodes.len(), n);
    assert!(state[0].nodes.iter().all(|(_, s)| s == b"SUCCEEDED"));
}

/// Many creations at once, more than the pool has connections, with failing ones among them:
/// each gets its own outcome (a taken name ALREADY_EXISTS, a bad tag INVALID_ARGUMENT, an
/// unknown project NOT_FOUND), every valid one is stored with its engine request, and the
/// failures (rolled-back transactions) hold up no later write. SQLite queues its writers in
/// the process (`SqliteTx`); a writer that never gave its turn back would hang this test.
pub async fn concurrent_creations_each_own_outcome(store: Arc<dyn MetadataStore>) {
    store
        .create_execution(execution("taken", "lp", "QUEUED", t(0)), None)
        .await
        .unwrap();
    const N: usize = 48;
    let mut handles = Vec::new();
    for i in 0..N {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            let mut e = execution(&format!("c{i}"), "lp", "QUEUED", t(1));
            match i {
                7 => e.key.name = "taken".into(),
                19 => e.tags = vec!["bad\u{1f}tag".into()],
                31 => e.key.project = "nope".into(),
                _ => {}
            }
            store
                .create_execution(e, Some(format!("request {i}").into_bytes()))
                .await
        }));
    }
    for (i, h) in handles.into_iter().enumerate() {
        let outcome = h.await.unwrap();
        match i {
            7 => assert!(
                matches!(outcome, Err(StoreError::AlreadyExists(ref w)) if w.contains("taken")),
                "{outcome:?}"
            ),
            19 => assert!(
                matches!(outcome, Err(StoreError::InvalidArgument(_))),
                "{outcome:?}"
            ),
            31 => assert!(
                matches!(outcome, Err(StoreError::NotFound(_))),
                "{outcome:?}"
            ),
            _ => outcome.unwrap_or_else(|e| panic!("creation {i}: {e}")),
        }
    }
    let journaled = store.load_engine_state().await.unwrap();
    let mut names: Vec<String> = journaled.iter().map(|s| s.execution.name.clone()).collect();
    names.sort();
    let mut expected: Vec<String> = (0..N)
        .filter(|i| ![7, 19, 31].contains(i))
        .map(|i| format!("c{i}"))
        .collect();
    expected.sort();
    assert_eq!(names, expected);
    for s in &journaled {
        assert_eq!(
            s.request,
            format!("request {}", &s.execution.name[1..]).into_bytes()
        );
        assert_eq!(
            store.get_execution(&s.execution).await.unwrap().phase,
            "QUEUED"
        );
    }
    // The store still writes after the failures.
    store
        .create_execution(execution("after", "lp", "QUEUED", t(2)), None)
        .await
        .unwrap();
    assert_eq!(
        store.get_execution(&ekey("after")).await.unwrap().key,
        ekey("after")
    );
}

/// Creations that arrive while another write holds the database (here a transition whose
/// decision waits) are written together once it ends — on SQLite in one transaction and one
/// COMMIT (group commit), each in its own savepoint — and still each get their own outcome:
/// a duplicate name ALREADY_EXISTS, a bad tag INVALID_ARGUMENT, an unknown project
/// NOT_FOUND, every other one stored and journaled. A creation whose caller gives up while
/// it waits is not written on SQLite (it leaves the queue; PostgreSQL, with no queue, may
/// have stored it already).
pub async fn creations_queued_behind_a_write_each_own_outcome(store: Arc<dyn MetadataStore>) {
    store
        .create_execution(execution("taken", "lp", "QUEUED", t(0)), None)
        .await
        .unwrap();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let (holding, held) = tokio::sync::oneshot::channel::<()>();
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .transition(
                    flyte_store::StateRead {
                        execution: ekey("taken"),
                        ..Default::default()
                    },
                    Box::new(move |_| {
                        let _ = holding.send(());
                        // Blocks this runtime thread, holding the write, until released.
                        let _ = released.recv();
                        StateBatch::default()
                    }),
                )
                .await
        })
    };
    held.await.unwrap();
    const N: usize = 24;
    let mut handles = Vec::new();
    for i in 0..N {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            let mut e = execution(&format!("q{i}"), "lp", "QUEUED", t(1));
            match i {
                3 => e.key.name = "taken".into(),
                11 => e.tags = vec!["bad\u{1f}tag".into()],
                17 => e.key.project = "nope".into(),
                _ => e.tags = vec![format!("t{i}")],
            }
            store
                .create_execution(e, Some(format!("request {i}").into_bytes()))
                .await
        }));
    }
    let gone = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .create_execution(execution("gone", "lp", "QUEUED", t(1)), None)
                .await
        })
    };
    // Let every creation reach the store and queue (SQLite) or finish (PostgreSQL).
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    gone.abort();
    let _ = gone.await;
    release.send(()).unwrap();
    writer.await.unwrap().unwrap();

    for (i, h) in handles.into_iter().enumerate() {
        let outcome = h.await.unwrap();
        match i {
            3 => assert!(
                matches!(outcome, Err(StoreError::AlreadyExists(ref w)) if w.contains("taken")),
                "{outcome:?}"
            ),
            11 => assert!(
                matches!(outcome, Err(StoreError::InvalidArgument(_))),
                "{outcome:?}"
            ),
            17 => assert!(
                matches!(outcome, Err(StoreError::NotFound(_))),
                "{outcome:?}"
            ),
            _ => outcome.unwrap_or_else(|e| panic!("creation {i}: {e}")),
        }
    }
    let mut journaled: Vec<String> = store
        .load_engine_state()
        .await
        .unwrap()
        .into_iter()
        .map(|s| {
            assert_eq!(
                s.request,
                format!("request {}", &s.execution.name[1..]).into_bytes()
            );
            s.execution.name
        })
        .collect();
    journaled.sort();
    let mut expected: Vec<String> = (0..N)
        .filter(|i| ![3, 11, 17].contains(i))
        .map(|i| format!("q{i}"))
        .collect();
    expected.sort();
    assert_eq!(journaled, expected);
    for name in &expected {
        let stored = store.get_execution(&ekey(name)).await.unwrap();
        assert_eq!(stored.phase, "QUEUED");
        assert_eq!(stored.tags, vec![format!("t{}", &name[1..])]);
    }
    // The refused ones left nothing behind: the taken name keeps its first execution.
    assert_eq!(
        store
            .get_execution(&ekey("taken"))
            .await
            .unwrap()
            .created_at,
        t(0)
    );
    if store.backend_name() == "sqlite" {
        assert!(
            matches!(
                store.get_execution(&ekey("gone")).await,
                Err(StoreError::NotFound(_))
            ),
            "a creation given up while queued was written"
        );
    }
}
