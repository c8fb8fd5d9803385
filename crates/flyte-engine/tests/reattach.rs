//! Issue 12 item 4, "re-attach, not re-run": a task process outlives the server that started
//! it. The first engine dies mid-attempt (its runtime is dropped, as a SIGKILL of the server
//! would drop it; the process is not killed); a new engine on the same journal, blobs and data
//! dir re-attaches: the task body runs exactly once, under attempt 0, and its outputs become
//! the workflow's. Also when the task ended while no server was running.

mod engine_support;
use engine_support::*;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use flyte_blob::BlobStore;
use flyte_engine::backend::{LocalProcessBackend, LocalProcessConfig};
use flyte_engine::{Engine, ExecKey, MemorySink, WorkflowPhase};
use flyteidl::core::*;
use flyteidl::event::workflow_execution_event::OutputResult;
use prost::Message;

/// Bounds a hung test; asserts nothing about speed.
const WAIT: Duration = Duration::from_secs(60);

struct Setup {
    _dir: tempfile::TempDir,
    root: PathBuf,
    blob: BlobStore,
}

impl Setup {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let blob = BlobStore::from_url(&format!("file://{}/blobs", root.display())).unwrap();
        Self {
            _dir: dir,
            root,
            blob,
        }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// An engine as a server process builds it over the data dir.
    fn engine(&self, sink: &Arc<MemorySink>) -> Engine {
        let mut config = LocalProcessConfig::new(self.root.join("data"), "http://127.0.0.1:1");
        config.kill_grace_period = Duration::from_millis(500);
        let backend = Arc::new(LocalProcessBackend::new(config, self.blob.clone()));
        Engine::new(engine_support::deps(&self.blob, vec![backend], sink))
    }

    /// The wrapper's exit-status file of attempt 0 of node n0.
    fn exit_file(&self, exec: &str) -> PathBuf {
        self.root.join(format!("data/work/p/d/{exec}/n0/0.exit"))
    }

    /// wf() -> o: int, one shell task node `n0` that notes in `recorded` whether its process
    /// was already recorded (`<work dir>.pid`; it runs in its work dir), appends a line to
    /// `runs`, says it started, waits for `release`, then writes outputs `o = 42`.
    async fn compiled(&self) -> CompiledWorkflowClosure {
        let outputs = LiteralMap {
            literals: [("o".to_string(), int_lit(42))].into(),
        };
        let prepared = self.file("outputs.pb");
        std::fs::write(&prepared, outputs.encode_to_vec()).unwrap();
        let script = format!(
            r#"if [ -f ../0.pid ]; then echo yes; else echo no; fi >> "{recorded}"
echo ran >> "{runs}"
echo started > "{started}"
while [ ! -f "{release}" ]; do sleep 0.05; done
out="${{1#file://}}"
mkdir -p "$out" && cp "{prepared}" "$out/outputs.pb""#,
            recorded = self.file("recorded").display(),
            runs = self.file("runs").display(),
            started = self.file("started").display(),
            release = self.file("release").display(),
            prepared = prepared.display(),
        );
        shell_task_workflow(&script)
    }
}

/// Starts the execution on a first engine and "kills the server" once the task runs: the
/// engine's runtime is dropped with everything on it, the task process is left alone.
fn start_then_crash(setup: &Setup, name: &str) -> Arc<MemorySink> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let sink = MemorySink::new();
    rt.block_on(async {
        let engine = setup.engine(&sink);
        let req = request(name, setup.compiled().await, &[]);
        engine.start_execution(req).await.expect("starts");
        wait_for(&setup.file("started")).await;
        engine.crash();
    });
    rt.shutdown_background();
    sink.snapshot()
}

/// Resumes on a new engine over the journal the first one left; the final phase, the
/// attempts the task events name, and the workflow's output `o`.
async fn resume_and_finish(
    setup: &Setup,
    journal: &Arc<MemorySink>,
    name: &str,
) -> (WorkflowPhase, Vec<u32>, Option<Literal>) {
    let engine = setup.engine(journal);
    assert_eq!(engine.resume_all().await.expect("resumes"), 1);
    std::fs::write(setup.file("release"), "").unwrap();
    let req = request(name, CompiledWorkflowClosure::default(), &[]);
    let phase = tokio::time::timeout(WAIT, engine.wait(&req.id))
        .await
        .expect("the execution finishes")
        .expect("a final phase");
    let attempts = journal
        .task_events(name)
        .iter()
        .map(|e| e.retry_attempt)
        .collect();
    let output = match journal
        .workflow_events(name)
        .last()
        .and_then(|e| e.output_result.clone())
    {
        Some(OutputResult::OutputUri(uri)) => {
            let path = setup.blob.path_from_native_url(&uri).unwrap();
            let map = LiteralMap::decode(setup.blob.get(&path).await.unwrap()).unwrap();
            map.literals.get("o").cloned()
        }
        Some(OutputResult::OutputData(map)) => map.literals.get("o").cloned(),
        _ => None,
    };
    let record = journal
        .node_record(&ExecKey::of(&req.id), "n0")
        .expect("n0 journaled");
    assert_eq!(record.attempt, 0, "the attempt number did not grow");
    (phase, attempts, output)
}

/// Whether each run of the body found its process recorded when it started. A body that
/// starts before the record is written runs again when the server dies in between (the next
/// server finds nothing to re-attach to).
fn recorded(setup: &Setup) -> Vec<String> {
    std::fs::read_to_string(setup.file("recorded"))
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

fn runs(setup: &Setup) -> usize {
    std::fs::read_to_string(setup.file("runs"))
        .unwrap_or_default()
        .lines()
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_running_across_a_crash_is_reattached_not_rerun() {
    let setup = Setup::new();
    let journal = tokio::task::block_in_place(|| start_then_crash(&setup, "alive"));
    assert!(
        !setup.exit_file("alive").exists(),
        "the task still runs while no server does"
    );
    let (phase, attempts, output) = resume_and_finish(&setup, &journal, "alive").await;
    assert_eq!(phase, WorkflowPhase::Succeeded);
    assert_eq!(
        recorded(&setup),
        ["yes"],
        "the body started only after its process was recorded"
    );
    assert_eq!(runs(&setup), 1, "the task body ran exactly once");
    assert!(
        !attempts.is_empty() && attempts.iter().all(|a| *a == 0),
        "{attempts:?}"
    );
    assert_eq!(output, Some(int_lit(42)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_that_ended_while_the_server_was_down_is_collected() {
    let setup = Setup::new();
    let journal = tokio::task::block_in_place(|| start_then_crash(&setup, "ended"));
    // The task finishes while no server runs.
    std::fs::write(setup.file("release"), "").unwrap();
    wait_for(&setup.exit_file("ended")).await;
    let (phase, attempts, output) = resume_and_finish(&setup, &journal, "ended").await;
    assert_eq!(phase, WorkflowPhase::Succeeded);
    assert_eq!(
        recorded(&setup),
        ["yes"],
        "the body started only after its process was recorded"
    );
    assert_eq!(runs(&setup), 1, "the task body ran exactly once");
    assert!(
        !attempts.is_empty() && attempts.iter().all(|a| *a == 0),
        "{attempts:?}"
    );
    assert_eq!(output, Some(int_lit(42)));
}

/// A graceful stop leaves task processes running too. One that ends after the engine stopped
/// (its outcome has nowhere to go) keeps its records, and the next engine collects it rather
/// than running it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_ending_after_a_graceful_stop_is_collected_not_rerun() {
    let setup = Setup::new();
    let sink = MemorySink::new();
    let engine = setup.engine(&sink);
    let req = request("graceful", setup.compiled().await, &[]);
    engine.start_execution(req).await.expect("starts");
    wait_for(&setup.file("started")).await;
    engine.shutdown().await;
    std::fs::write(setup.file("release"), "").unwrap();
    wait_for(&setup.exit_file("graceful")).await;
    // The stopped server's backend has seen the process end (it removes the working dir).
    let work_dir = setup.root.join("data/work/p/d/graceful/n0/0");
    tokio::time::timeout(WAIT, async {
        while work_dir.exists() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the first backend collects its process");
    let (phase, attempts, output) = resume_and_finish(&setup, &sink.snapshot(), "graceful").await;
    assert_eq!(phase, WorkflowPhase::Succeeded);
    assert_eq!(
        recorded(&setup),
        ["yes"],
        "the body started only after its process was recorded"
    );
    assert_eq!(runs(&setup), 1, "the task body ran exactly once");
    assert!(
        !attempts.is_empty() && attempts.iter().all(|a| *a == 0),
        "{attempts:?}"
    );
    assert_eq!(output, Some(int_lit(42)));
}
