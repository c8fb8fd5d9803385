//! Dynamic tasks and map tasks with the real client: flytekit 1.16.31 serializes a module
//! (`pyflyte serialize`), the engine compiles and runs it with the local-process backend, and
//! flytekit's own `pyflyte-execute` / `pyflyte-map-execute` write `futures.pb` and the per-index
//! outputs. Checks the contract both ways: what the engine hands the task processes (inputs,
//! array index environment) and what it does with what they write.
//!
//! Skipped, with a note, when `.venv` is absent (`scripts/setup-python.sh` makes it).

mod engine_support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use flyte_blob::BlobStore;
use flyte_core::compiler::{Resolved, compile_workflow_template};
use flyte_core::ids::IdKey;
use flyte_engine::backend::{LocalProcessBackend, LocalProcessConfig};
use flyte_engine::{Engine, ExecutionRequest, MemorySink, WorkflowPhase};
use flyteidl::admin::{TaskSpec, WorkflowSpec};
use flyteidl::core::*;
use prost::Message;

const MODULE: &str = r#"
import typing
from flytekit import task, workflow, dynamic, map_task


@task
def inc(x: int) -> int:
    return x + 1


@task
def total(xs: typing.List[int]) -> int:
    return sum(xs)


@dynamic
def fan(n: int) -> int:
    return total(xs=[inc(x=i) for i in range(n)])


@dynamic
def outer(n: int) -> int:
    return total(xs=[fan(n=i) for i in range(1, n + 1)])


@workflow
def dyn_wf(n: int) -> int:
    return outer(n=n)


@task
def add(x: int, y: int) -> int:
    return x + y


@workflow
def map_wf(xs: typing.List[int], y: int) -> typing.List[int]:
    return map_task(add, bound_inputs={"y"})(x=xs, y=y)
"#;

/// The repository's venv with the real flytekit. Missing, the test fails: it never skips
/// (scripts/test.sh creates the venv before `cargo test`).
fn venv() -> PathBuf {
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv");
    assert!(
        venv.join("bin/pyflyte").exists(),
        "no .venv with flytekit at {}: run scripts/setup-python.sh first",
        venv.display()
    );
    std::fs::canonicalize(venv).expect("canonical .venv path")
}

struct Serialized {
    tasks: Vec<TaskTemplate>,
    workflows: BTreeMap<String, WorkflowSpec>,
}

/// `pyflyte --pkgs dm serialize workflows` of [`MODULE`].
fn serialize(venv: &Path, src: &Path, out: &Path) -> Serialized {
    std::fs::write(src.join("dm.py"), MODULE).unwrap();
    std::fs::create_dir_all(out).unwrap();
    let status = std::process::Command::new(venv.join("bin/pyflyte"))
        .args([
            "--pkgs",
            "dm",
            "serialize",
            "--image",
            "img:1",
            "workflows",
            "-f",
        ])
        .arg(out)
        .current_dir(src)
        .env(
            "PATH",
            format!("{}:/usr/bin:/bin", venv.join("bin").display()),
        )
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "pyflyte serialize failed");
    let mut s = Serialized {
        tasks: Vec::new(),
        workflows: BTreeMap::new(),
    };
    for e in std::fs::read_dir(out).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_str().unwrap().to_string();
        let bytes = std::fs::read(&p).unwrap();
        if name.ends_with("_1.pb") {
            s.tasks.push(
                TaskSpec::decode(bytes.as_slice())
                    .unwrap()
                    .template
                    .unwrap(),
            );
        } else if name.ends_with("_2.pb") {
            let wf = WorkflowSpec::decode(bytes.as_slice()).unwrap();
            let id = wf
                .template
                .as_ref()
                .unwrap()
                .id
                .as_ref()
                .unwrap()
                .name
                .clone();
            s.workflows.insert(id, wf);
        }
    }
    s
}

fn compile(s: &Serialized, wf: &str) -> CompiledWorkflowClosure {
    let spec = &s.workflows[wf];
    let resolved = Resolved {
        tasks: s
            .tasks
            .iter()
            .map(|t| (IdKey::from(t.id.as_ref().unwrap()), t.clone()))
            .collect(),
        ..Default::default()
    };
    compile_workflow_template(
        spec.template.as_ref().unwrap(),
        &spec.sub_workflows,
        &resolved,
    )
    .unwrap_or_else(|e| panic!("compile {wf}: {e}"))
}

fn int_lit(i: i64) -> Literal {
    Literal {
        value: Some(literal::Value::Scalar(Box::new(Scalar {
            value: Some(scalar::Value::Primitive(Primitive {
                value: Some(primitive::Value::Integer(i)),
            })),
        }))),
        ..Default::default()
    }
}

fn as_int(l: &Literal) -> i64 {
    match &l.value {
        Some(literal::Value::Scalar(s)) => match &s.value {
            Some(scalar::Value::Primitive(Primitive {
                value: Some(primitive::Value::Integer(i)),
            })) => *i,
            other => panic!("not an int: {other:?}"),
        },
        other => panic!("not a scalar: {other:?}"),
    }
}

async fn run(
    engine: &Engine,
    name: &str,
    compiled: CompiledWorkflowClosure,
    inputs: Vec<(&str, Literal)>,
) -> WorkflowPhase {
    let req = ExecutionRequest {
        id: WorkflowExecutionIdentifier {
            project: "flytesnacks".into(),
            domain: "development".into(),
            name: name.into(),
            ..Default::default()
        },
        compiled,
        inputs: LiteralMap {
            literals: inputs
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        },
        ..Default::default()
    };
    let id = req.id.clone();
    engine.start_execution(req).await.unwrap();
    tokio::time::timeout(Duration::from_secs(300), engine.wait(&id))
        .await
        .expect("execution did not finish")
        .expect("no final phase")
}

async fn outputs(blob: &BlobStore, sink: &MemorySink, name: &str) -> LiteralMap {
    let evs = sink.workflow_events(name);
    engine_support::reported_outputs(blob, evs.last().unwrap()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_flytekit_dynamic_and_map_tasks() {
    let venv = venv();
    let dir = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(dir.path()).unwrap();
    let src = root.join("src");
    std::fs::create_dir_all(&src).unwrap();
    let s = serialize(&venv, &src, &root.join("out"));

    let blob = BlobStore::from_url(&format!("file://{}/blobs", root.display())).unwrap();
    let mut cfg = LocalProcessConfig::new(root.join("data"), "http://127.0.0.1:1");
    cfg.venv = Some(venv.clone());
    cfg.default_env
        .insert("PYTHONPATH".into(), src.display().to_string());
    let backend = Arc::new(LocalProcessBackend::new(cfg, blob.clone()));
    let sink = MemorySink::new();
    let engine = Engine::new(engine_support::deps(&blob, vec![backend], &sink));

    // Nested dynamic: outer(3) = total([fan(1), fan(2), fan(3)]); fan(n) = sum(1..=n).
    let phase = run(
        &engine,
        "dynreal",
        compile(&s, "dm.dyn_wf"),
        vec![("n", int_lit(3))],
    )
    .await;
    if phase != WorkflowPhase::Succeeded {
        panic!(
            "dyn_wf: {phase:?}: {:?}",
            sink.workflow_events("dynreal").last()
        );
    }
    let out = outputs(&blob, &sink, "dynreal").await;
    assert_eq!(as_int(&out.literals["o0"]), 1 + (1 + 2) + (1 + 2 + 3));
    let evs = sink.node_events("dynreal");
    assert!(evs.iter().any(|e| e.id.as_ref().unwrap().node_id == "n0"
        && e.phase == node_execution::Phase::DynamicRunning as i32));

    // Map task with a bound input: each index reads the whole inputs.pb and picks its x.
    let xs = Literal {
        value: Some(literal::Value::Collection(LiteralCollection {
            literals: (1..=4).map(int_lit).collect(),
        })),
        ..Default::default()
    };
    let phase = run(
        &engine,
        "mapreal",
        compile(&s, "dm.map_wf"),
        vec![("xs", xs), ("y", int_lit(10))],
    )
    .await;
    if phase != WorkflowPhase::Succeeded {
        panic!(
            "map_wf: {phase:?}: {:?}",
            sink.workflow_events("mapreal").last()
        );
    }
    let out = outputs(&blob, &sink, "mapreal").await;
    let Some(literal::Value::Collection(c)) = &out.literals["o0"].value else {
        panic!("not a list: {out:?}")
    };
    let got: Vec<i64> = c.literals.iter().map(as_int).collect();
    assert_eq!(got, vec![11, 12, 13, 14]);
}
