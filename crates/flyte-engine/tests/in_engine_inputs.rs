//! In-engine tasks (echo, core-sleep) take their inputs in memory: no process reads an
//! `inputs.pb` or `task.pb`, so neither is written per node; the node's QUEUED event carries the inputs
//! (`input_data`) for the admin to keep, and after a restart they are resolved again.

mod engine_support;
use engine_support::*;

use std::sync::Arc;
use std::time::Duration;

use flyte_blob::BlobStore;
use flyte_core::compiler::{Resolved, compile_workflow_template};
use flyte_core::ids::IdKey;
use flyte_engine::backend::builtin::BuiltinBackend;
use flyte_engine::{Engine, MemorySink, WorkflowPhase};
use flyteidl::core::*;
use flyteidl::event::{node_execution_event, task_execution_event};

fn duration_t() -> LiteralType {
    LiteralType {
        r#type: Some(literal_type::Type::Simple(SimpleType::Duration as i32)),
        ..Default::default()
    }
}

fn duration_lit(millis: i64) -> Literal {
    Literal {
        value: Some(literal::Value::Scalar(Box::new(Scalar {
            value: Some(scalar::Value::Primitive(Primitive {
                value: Some(primitive::Value::Duration(pbjson_types::Duration {
                    seconds: millis / 1000,
                    nanos: ((millis % 1000) * 1_000_000) as i32,
                })),
            })),
        }))),
        ..Default::default()
    }
}

fn task(
    name: &str,
    kind: &str,
    inputs: &[(&str, LiteralType)],
    outputs: &[(&str, LiteralType)],
) -> TaskTemplate {
    TaskTemplate {
        id: Some(ident(ResourceType::Task, name)),
        r#type: kind.into(),
        metadata: Some(TaskMetadata::default()),
        interface: Some(iface(inputs, outputs)),
        ..Default::default()
    }
}

fn node(id: &str, task: &TaskTemplate, var: &str, from: (&str, &str), after: &[&str]) -> Node {
    Node {
        id: id.into(),
        inputs: vec![Binding {
            var: var.into(),
            binding: Some(BindingData {
                value: Some(binding_data::Value::Promise(OutputReference {
                    node_id: from.0.into(),
                    var: from.1.into(),
                    ..Default::default()
                })),
                ..Default::default()
            }),
        }],
        upstream_node_ids: after.iter().map(|s| s.to_string()).collect(),
        target: Some(node::Target::TaskNode(TaskNode {
            reference: Some(task_node::Reference::ReferenceId(task.id.clone().unwrap())),
            ..Default::default()
        })),
        ..Default::default()
    }
}

fn compile(wf: WorkflowTemplate, tasks: Vec<TaskTemplate>) -> CompiledWorkflowClosure {
    let mut resolved = Resolved::default();
    for t in tasks {
        resolved
            .tasks
            .insert(IdKey::from(t.id.as_ref().unwrap()), t);
    }
    compile_workflow_template(&wf, &[], &resolved).expect("compiles")
}

/// Files named `name` anywhere under `dir` but the end node's (its inputs are the workflow's
/// outputs, a file when large).
fn files_named(dir: &std::path::Path, name: &str) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let path = e.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "end-node") {
                found.extend(files_named(&path, name));
            }
        } else if path.file_name().is_some_and(|n| n == name) {
            found.push(path);
        }
    }
    found
}

fn engine(blob: &BlobStore, sink: &Arc<MemorySink>) -> Engine {
    Engine::new(deps(
        blob,
        vec![Arc::new(BuiltinBackend::new(blob.clone()))],
        sink,
    ))
}

/// Starts `req` on `engine` and waits (up to `secs`) for its final phase.
async fn run_to_end(
    engine: &Engine,
    req: flyte_engine::ExecutionRequest,
    secs: u64,
) -> Option<WorkflowPhase> {
    let id = req.id.clone();
    engine.start_execution(req).await.unwrap();
    tokio::time::timeout(Duration::from_secs(secs), engine.wait(&id))
        .await
        .expect("finishes")
}

/// Waits (up to 5 s) until `ready` holds on what `first` has journaled, then crashes it and
/// returns the journal a restarted server reads.
async fn crash_when(
    first: Engine,
    sink: &Arc<MemorySink>,
    ready: impl Fn(&MemorySink) -> bool,
    what: &str,
) -> Arc<MemorySink> {
    for _ in 0..500 {
        if ready(sink) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(ready(sink), "{what}");
    first.crash();
    sink.snapshot()
}

/// A second server on `journal` resumes the one execution in it; its final phase.
async fn resume_once(
    blob: &BlobStore,
    journal: &Arc<MemorySink>,
    id: &WorkflowExecutionIdentifier,
) -> Option<WorkflowPhase> {
    let second = engine(blob, journal);
    assert_eq!(second.resume_all().await.unwrap(), 1);
    tokio::time::timeout(Duration::from_secs(20), second.wait(id))
        .await
        .expect("finishes")
}

#[tokio::test]
async fn a_fan_out_of_in_engine_leaves_writes_no_inputs_file_and_reports_the_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let blob = BlobStore::from_url(dir.path().to_str().unwrap()).unwrap();
    let sink = MemorySink::new();
    let echo = task("echo", "echo", &[("a", int_t())], &[("a", int_t())]);
    let sleep = task("nap", "core-sleep", &[("d", duration_t())], &[]);
    let mut nodes: Vec<Node> = (0..20)
        .map(|i| node(&format!("e{i}"), &echo, "a", ("start-node", "x"), &[]))
        .collect();
    nodes.extend((0..20).map(|i| node(&format!("s{i}"), &sleep, "d", ("start-node", "d"), &[])));
    let wf = WorkflowTemplate {
        id: Some(ident(ResourceType::Workflow, "fan")),
        interface: Some(iface(&[("x", int_t()), ("d", duration_t())], &[])),
        nodes,
        ..Default::default()
    };
    let req = request(
        "fan",
        compile(wf, vec![echo, sleep]),
        &[("x", int_lit(7)), ("d", duration_lit(0))],
    );
    let phase = run_to_end(&engine(&blob, &sink), req, 20).await;
    assert_eq!(phase, Some(WorkflowPhase::Succeeded));

    let written = files_named(dir.path(), "inputs.pb");
    assert!(written.is_empty(), "in-engine leaves wrote {written:?}");
    let written = files_named(dir.path(), "task.pb");
    assert!(written.is_empty(), "in-engine leaves wrote {written:?}");
    // Echo still hands its outputs on (the file its downstream and the API read); the start
    // node's outputs (the workflow's inputs) are in its event.
    assert_eq!(files_named(dir.path(), "outputs.pb").len(), 20, "20 echoes");

    let events = sink.node_events("fan");
    for leaf in (0..20)
        .map(|i| format!("e{i}"))
        .chain((0..20).map(|i| format!("s{i}")))
    {
        let mine: Vec<_> = events
            .iter()
            .filter(|e| e.id.as_ref().is_some_and(|i| i.node_id == leaf))
            .collect();
        let queued = mine
            .iter()
            .find(|e| e.phase == node_execution::Phase::Queued as i32)
            .unwrap_or_else(|| panic!("{leaf} has no QUEUED event"));
        let Some(node_execution_event::InputValue::InputData(inputs)) = &queued.input_value else {
            panic!(
                "{leaf}'s QUEUED event has no inline inputs: {:?}",
                queued.input_value
            );
        };
        let (var, want) = if leaf.starts_with('e') {
            ("a", int_lit(7))
        } else {
            ("d", duration_lit(0))
        };
        assert_eq!(inputs.literals.get(var), Some(&want), "{leaf}");
        // No event names a file that does not exist.
        for e in &mine {
            assert!(
                !matches!(
                    e.input_value,
                    Some(node_execution_event::InputValue::InputUri(_))
                ),
                "{leaf}: {:?}",
                e.input_value
            );
        }
    }
    for t in sink.task_events("fan") {
        assert!(
            !matches!(
                t.input_value,
                Some(task_execution_event::InputValue::InputUri(_))
            ),
            "{:?}",
            t.input_value
        );
    }
}

#[tokio::test]
async fn an_in_engine_sleep_running_at_a_crash_runs_again_with_its_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let blob = BlobStore::from_url(dir.path().to_str().unwrap()).unwrap();
    let sink = MemorySink::new();
    // n0 echoes the duration, n1 sleeps for n0's output: after the restart n1's inputs must
    // be resolved again from n0's stored outputs.
    let echo = task(
        "echo_d",
        "echo",
        &[("d", duration_t())],
        &[("d", duration_t())],
    );
    let sleep = task("nap", "core-sleep", &[("d", duration_t())], &[]);
    let wf = WorkflowTemplate {
        id: Some(ident(ResourceType::Workflow, "crash")),
        interface: Some(iface(&[("d", duration_t())], &[])),
        nodes: vec![
            node("n0", &echo, "d", ("start-node", "d"), &[]),
            node("n1", &sleep, "d", ("n0", "d"), &[]),
        ],
        ..Default::default()
    };
    let req = request(
        "cr",
        compile(wf, vec![echo, sleep]),
        &[("d", duration_lit(600))],
    );
    let id = req.id.clone();
    let first = engine(&blob, &sink);
    first.start_execution(req).await.unwrap();
    // Wait until n1 sleeps, then crash.
    let running = |s: &MemorySink| {
        s.task_events("cr").iter().any(|t| {
            t.parent_node_execution_id
                .as_ref()
                .is_some_and(|n| n.node_id == "n1")
                && t.phase == task_execution::Phase::Running as i32
        })
    };
    let journal = crash_when(first, &sink, running, "n1 never ran").await;
    let phase = resume_once(&blob, &journal, &id).await;
    assert_eq!(phase, Some(WorkflowPhase::Succeeded));
    // The builtin backend keeps nothing across restarts: a new attempt ran and succeeded.
    let n1: Vec<_> = journal
        .task_events("cr")
        .into_iter()
        .filter(|t| {
            t.parent_node_execution_id
                .as_ref()
                .is_some_and(|n| n.node_id == "n1")
        })
        .collect();
    assert!(
        n1.iter()
            .any(|t| t.retry_attempt == 1 && t.phase == task_execution::Phase::Succeeded as i32),
        "{n1:?}"
    );
    assert!(files_named(dir.path(), "inputs.pb").is_empty());
}

/// `x` echoed to the workflow output `o`, after an in-engine sleep of `d` (`start-node` →
/// `s0` → `e0` → `end-node`).
fn sleep_then_echo() -> CompiledWorkflowClosure {
    let echo = task("echo", "echo", &[("a", int_t())], &[("a", int_t())]);
    let sleep = task("nap", "core-sleep", &[("d", duration_t())], &[]);
    let wf = WorkflowTemplate {
        id: Some(ident(ResourceType::Workflow, "late")),
        interface: Some(iface(
            &[("x", int_t()), ("d", duration_t())],
            &[("o", int_t())],
        )),
        nodes: vec![
            node("s0", &sleep, "d", ("start-node", "d"), &[]),
            node("e0", &echo, "a", ("start-node", "x"), &["s0"]),
        ],
        outputs: vec![Binding {
            var: "o".into(),
            binding: Some(BindingData {
                value: Some(binding_data::Value::Promise(OutputReference {
                    node_id: "e0".into(),
                    var: "a".into(),
                    ..Default::default()
                })),
                ..Default::default()
            }),
        }],
        ..Default::default()
    };
    compile(wf, vec![echo, sleep])
}

fn exists(dir: &std::path::Path, exec: &str, file: &str) -> bool {
    dir.join(format!("metadata/p-d-{exec}/{file}")).exists()
}

const START_END_FILES: [&str; 3] = [
    "start-node/data/0/outputs.pb",
    "end-node/data/inputs.pb",
    "end-node/data/0/outputs.pb",
];

#[tokio::test]
async fn start_and_end_nodes_write_files_only_for_maps_past_the_inline_limit() {
    for (limit, files) in [(4096, false), (1, true)] {
        let dir = tempfile::tempdir().unwrap();
        let blob = BlobStore::from_url(dir.path().to_str().unwrap()).unwrap();
        let sink = MemorySink::new();
        let mut d = deps(
            &blob,
            vec![Arc::new(BuiltinBackend::new(blob.clone()))],
            &sink,
        );
        d.config.inline_max_bytes = limit;
        let engine = Engine::new(d);
        let req = request(
            "io",
            sleep_then_echo(),
            &[("x", int_lit(7)), ("d", duration_lit(0))],
        );
        let id = req.id.clone();
        engine.start_execution(req).await.unwrap();
        let phase = tokio::time::timeout(Duration::from_secs(20), engine.wait(&id))
            .await
            .expect("finishes");
        assert_eq!(phase, Some(WorkflowPhase::Succeeded));
        for file in START_END_FILES {
            assert_eq!(
                exists(dir.path(), "io", file),
                files,
                "{file} at limit {limit}"
            );
        }
        let events = sink.workflow_events("io");
        let last = events.last().unwrap();
        assert_eq!(
            matches!(
                last.output_result,
                Some(flyteidl::event::workflow_execution_event::OutputResult::OutputData(_))
            ),
            !files,
            "{last:?}"
        );
        let outputs = reported_outputs(&blob, last).await;
        assert_eq!(
            outputs.literals.get("o"),
            Some(&int_lit(7)),
            "limit {limit}"
        );
        // The end node's QUEUED event names its inputs the way they are kept.
        let end_queued = sink
            .node_events("io")
            .into_iter()
            .find(|e| {
                e.id.as_ref().is_some_and(|i| i.node_id == "end-node")
                    && e.phase == node_execution::Phase::Queued as i32
            })
            .expect("the end node's QUEUED event");
        match &end_queued.input_value {
            Some(node_execution_event::InputValue::InputData(m)) if !files => {
                assert_eq!(m.literals.get("o"), Some(&int_lit(7)))
            }
            Some(node_execution_event::InputValue::InputUri(_)) if files => {}
            other => panic!("limit {limit}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn after_a_crash_the_start_nodes_inline_outputs_are_the_workflow_inputs_again() {
    let dir = tempfile::tempdir().unwrap();
    let blob = BlobStore::from_url(dir.path().to_str().unwrap()).unwrap();
    let sink = MemorySink::new();
    let req = request(
        "late",
        sleep_then_echo(),
        &[("x", int_lit(7)), ("d", duration_lit(600))],
    );
    let id = req.id.clone();
    let first = engine(&blob, &sink);
    first.start_execution(req).await.unwrap();
    let sleeping = |s: &MemorySink| {
        s.task_events("late").iter().any(|t| {
            t.parent_node_execution_id
                .as_ref()
                .is_some_and(|n| n.node_id == "s0")
                && t.phase == task_execution::Phase::Running as i32
        })
    };
    let journal = crash_when(first, &sink, sleeping, "s0 never ran").await;
    let start = journal
        .node_record(&flyte_engine::ExecKey::of(&id), "start-node")
        .expect("the start node journaled");
    assert!(
        start.outputs_inline && start.output_path.is_empty(),
        "{start:?}"
    );
    // e0 binds to the start node, which ran before the crash and wrote no file.
    let phase = resume_once(&blob, &journal, &id).await;
    assert_eq!(phase, Some(WorkflowPhase::Succeeded));
    let events = journal.workflow_events("late");
    let outputs = reported_outputs(&blob, events.last().unwrap()).await;
    assert_eq!(outputs.literals.get("o"), Some(&int_lit(7)));
    for file in START_END_FILES {
        assert!(!exists(dir.path(), "late", file), "{file}");
    }
}

// --- map tasks over in-engine tasks -----------------------------------------------------------

/// A map task's template as flytekit serializes one (`map_task(t)`): the sub-task's type,
/// its mapped inputs and its outputs list-typed, and the container `pyflyte-map-execute`
/// runs in — which an in-engine sub-task never starts.
fn map_task_template(
    name: &str,
    kind: &str,
    inputs: &[(&str, LiteralType)],
    outputs: &[(&str, LiteralType)],
) -> TaskTemplate {
    let mut t = task(name, kind, inputs, outputs);
    t.task_type_version = 1;
    t.target = Some(task_template::Target::Container(Container {
        image: "ghcr.io/flyteorg/flytekit:py3.12-latest".into(),
        args: [
            "pyflyte-map-execute",
            "--inputs",
            "{{.input}}",
            "--output-prefix",
            "{{.outputPrefix}}",
            "--raw-output-data-prefix",
            "{{.rawOutputDataPrefix}}",
            "--resolver",
            "flytekit.core.array_node_map_task.ArrayNodeMapTaskResolver",
            "--",
            "vars",
            "",
            "resolver",
            "flytekit.core.python_auto_container.default_task_resolver",
        ]
        .map(String::from)
        .to_vec(),
        ..Default::default()
    }));
    t
}

fn map_node(id: &str, task: &TaskTemplate, inputs: &[(&str, BindingData)], bound: &[&str]) -> Node {
    let sub = Node {
        id: id.into(),
        target: Some(node::Target::TaskNode(TaskNode {
            reference: Some(task_node::Reference::ReferenceId(task.id.clone().unwrap())),
            ..Default::default()
        })),
        ..Default::default()
    };
    Node {
        id: id.into(),
        inputs: inputs
            .iter()
            .map(|(var, b)| Binding {
                var: var.to_string(),
                binding: Some(b.clone()),
            })
            .collect(),
        target: Some(node::Target::ArrayNode(Box::new(ArrayNode {
            node: Some(Box::new(sub)),
            bound_inputs: bound.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }))),
        ..Default::default()
    }
}

fn collection(items: impl IntoIterator<Item = Literal>) -> Literal {
    Literal {
        value: Some(literal::Value::Collection(LiteralCollection {
            literals: items.into_iter().collect(),
        })),
        ..Default::default()
    }
}

fn string_lit(s: &str) -> Literal {
    Literal {
        value: Some(literal::Value::Scalar(Box::new(Scalar {
            value: Some(scalar::Value::Primitive(Primitive {
                value: Some(primitive::Value::StringValue(s.into())),
            })),
        }))),
        ..Default::default()
    }
}

/// Map tasks over echo and core-sleep with the container flytekit gives them (issue 21): each
/// item runs in the engine on its own element, not on the array's whole `inputs.pb` (which
/// core-sleep refused: "input [duration] must be typed as duration"). Both maps succeed, the
/// echo map gathers every item's value in order (its bound input broadcast), and no item
/// writes an `inputs.pb`.
#[tokio::test]
async fn a_map_task_over_in_engine_tasks_runs_each_item_on_its_element() {
    let dir = tempfile::tempdir().unwrap();
    let blob = BlobStore::from_url(dir.path().to_str().unwrap()).unwrap();
    let sink = MemorySink::new();
    let str_t = || LiteralType {
        r#type: Some(literal_type::Type::Simple(SimpleType::String as i32)),
        ..Default::default()
    };
    // echo(a: int, b: str) -> (o0: int, o1: str), mapped over `a` with `b` bound.
    let echo = map_task_template(
        "map_echo",
        "echo",
        &[("a", list_t(int_t())), ("b", str_t())],
        &[("o0", list_t(int_t())), ("o1", list_t(str_t()))],
    );
    let sleep = map_task_template(
        "map_nap",
        "core-sleep",
        &[("duration", list_t(duration_t()))],
        &[],
    );
    let n = 20;
    let wf = WorkflowTemplate {
        id: Some(ident(ResourceType::Workflow, "maps")),
        interface: Some(iface(
            &[
                ("xs", list_t(int_t())),
                ("tag", str_t()),
                ("ds", list_t(duration_t())),
            ],
            &[("o", list_t(int_t())), ("t", list_t(str_t()))],
        )),
        nodes: vec![
            map_node(
                "m",
                &echo,
                &[
                    ("a", promise("start-node", "xs")),
                    ("b", promise("start-node", "tag")),
                ],
                &["b"],
            ),
            map_node(
                "s",
                &sleep,
                &[("duration", promise("start-node", "ds"))],
                &[],
            ),
        ],
        outputs: vec![
            Binding {
                var: "o".into(),
                binding: Some(promise("m", "o0")),
            },
            Binding {
                var: "t".into(),
                binding: Some(promise("m", "o1")),
            },
        ],
        metadata: Some(WorkflowMetadata::default()),
        ..Default::default()
    };
    let xs: Vec<Literal> = (0..n).map(|i| int_lit(100 + i)).collect();
    let req = request(
        "maps",
        compile(wf, vec![echo, sleep]),
        &[
            ("xs", collection(xs.clone())),
            ("tag", string_lit("k")),
            ("ds", collection((0..n).map(|i| duration_lit(i % 3)))),
        ],
    );
    let phase = run_to_end(&engine(&blob, &sink), req, 20).await;
    let events = sink.workflow_events("maps");
    let last = events.last().unwrap();
    assert_eq!(phase, Some(WorkflowPhase::Succeeded), "{last:?}");
    let outputs = reported_outputs(&blob, last).await;
    assert_eq!(outputs.literals.get("o"), Some(&collection(xs)));
    assert_eq!(
        outputs.literals.get("t"),
        Some(&collection((0..n).map(|_| string_lit("k"))))
    );
    // Every item of both maps reported SUCCEEDED in the arrays' last events.
    for map in ["m", "s"] {
        let last = sink
            .task_events("maps")
            .into_iter()
            .rfind(|t| {
                t.parent_node_execution_id
                    .as_ref()
                    .is_some_and(|p| p.node_id == map)
            })
            .unwrap_or_else(|| panic!("no task event of {map}"));
        assert_eq!(last.phase, task_execution::Phase::Succeeded as i32, "{map}");
        let items = &last.metadata.as_ref().unwrap().external_resources;
        assert_eq!(items.len(), n as usize, "{map}");
        assert!(
            items
                .iter()
                .all(|r| r.phase == task_execution::Phase::Succeeded as i32),
            "{map}: {items:?}"
        );
    }
    // The items took their elements in memory: the only inputs.pb files are the two array
    // nodes' own.
    let mut written: Vec<_> = files_named(dir.path(), "inputs.pb")
        .into_iter()
        .map(|p| p.strip_prefix(dir.path()).unwrap().to_owned())
        .collect();
    written.sort();
    assert_eq!(
        written,
        [
            "metadata/p-d-maps/m/data/inputs.pb",
            "metadata/p-d-maps/s/data/inputs.pb"
        ]
        .map(std::path::PathBuf::from),
    );
}

/// Outputs past 1 MiB in their file are not kept in memory once read (a million-item list is
/// ~450 MB decoded): each node that reads them reads the file again, and gets them whole.
#[tokio::test]
async fn big_outputs_read_again_from_their_file_reach_every_consumer() {
    let dir = tempfile::tempdir().unwrap();
    let blob = BlobStore::from_url(dir.path().to_str().unwrap()).unwrap();
    let sink = MemorySink::new();
    let ints = list_t(int_t());
    let echo = task(
        "echo",
        "echo",
        &[("a", ints.clone())],
        &[("a", ints.clone())],
    );
    // e0 echoes the big list; e1 and e2 each read e0's outputs (after e0 is done).
    let wf = WorkflowTemplate {
        id: Some(ident(ResourceType::Workflow, "big")),
        interface: Some(iface(
            &[("xs", ints.clone())],
            &[("o1", ints.clone()), ("o2", ints.clone())],
        )),
        nodes: vec![
            node("e0", &echo, "a", ("start-node", "xs"), &[]),
            node("e1", &echo, "a", ("e0", "a"), &["e0"]),
            node("e2", &echo, "a", ("e0", "a"), &["e1"]),
        ],
        outputs: vec![
            Binding {
                var: "o1".into(),
                binding: Some(promise("e1", "a")),
            },
            Binding {
                var: "o2".into(),
                binding: Some(promise("e2", "a")),
            },
        ],
        ..Default::default()
    };
    // 200,000 ints of 8 bytes' varint: ~2 MB encoded.
    let xs = collection((0..200_000).map(|i| int_lit(1 << 50 | i)));
    let req = request("big", compile(wf, vec![echo]), &[("xs", xs.clone())]);
    let phase = run_to_end(&engine(&blob, &sink), req, 60).await;
    let events = sink.workflow_events("big");
    let last = events.last().unwrap();
    assert_eq!(phase, Some(WorkflowPhase::Succeeded), "{last:?}");
    let e0_outputs = std::fs::metadata(dir.path().join("metadata/p-d-big/e0/data/0/outputs.pb"))
        .expect("e0's outputs file")
        .len();
    assert!(
        e0_outputs > 1 << 20,
        "{e0_outputs} bytes: not past the limit"
    );
    let outputs = reported_outputs(&blob, last).await;
    assert_eq!(outputs.literals.get("o1"), Some(&xs));
    assert_eq!(outputs.literals.get("o2"), Some(&xs));
}

/// A map over core-sleep whose items are sleeping when the server crashes: after the resume
/// the items in flight get their elements again (from the array node's `inputs.pb`) and the
/// map succeeds.
#[tokio::test]
async fn a_map_over_core_sleep_resumes_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let blob = BlobStore::from_url(dir.path().to_str().unwrap()).unwrap();
    let sink = MemorySink::new();
    let sleep = map_task_template(
        "map_nap",
        "core-sleep",
        &[("duration", list_t(duration_t()))],
        &[],
    );
    let wf = WorkflowTemplate {
        id: Some(ident(ResourceType::Workflow, "mapcrash")),
        interface: Some(iface(&[("ds", list_t(duration_t()))], &[])),
        nodes: vec![map_node(
            "s",
            &sleep,
            &[("duration", promise("start-node", "ds"))],
            &[],
        )],
        metadata: Some(WorkflowMetadata::default()),
        ..Default::default()
    };
    let req = request(
        "mc",
        compile(wf, vec![sleep]),
        &[("ds", collection((0..5).map(|_| duration_lit(600))))],
    );
    let id = req.id.clone();
    let first = engine(&blob, &sink);
    first.start_execution(req).await.unwrap();
    // Wait until the items sleep, then crash.
    let sleeping = |s: &MemorySink| {
        s.task_events("mc").iter().any(|t| {
            t.metadata.as_ref().is_some_and(|m| {
                m.external_resources
                    .iter()
                    .any(|r| r.phase == task_execution::Phase::Running as i32)
            })
        })
    };
    let journal = crash_when(first, &sink, sleeping, "no item ever ran").await;
    let phase = resume_once(&blob, &journal, &id).await;
    let events = journal.workflow_events("mc");
    assert_eq!(phase, Some(WorkflowPhase::Succeeded), "{:?}", events.last());
    let last = journal
        .task_events("mc")
        .into_iter()
        .last()
        .expect("the map's task events");
    assert_eq!(last.phase, task_execution::Phase::Succeeded as i32);
    let items = &last.metadata.as_ref().unwrap().external_resources;
    assert_eq!(items.len(), 5, "{items:?}");
}
