//! Issue 12 item 5: executions owned by engine replicas through leases. Two engines (replicas
//! `a` and `b`) share one journal, one blob store, one data dir and one lease store (an
//! in-memory stand-in for the metadata store's leases and notifications; the PostgreSQL
//! leases themselves are in flyte-store's conformance suite, the real replica set in
//! tests/e2e/test_replicas.py). A replica whose lease is lost stops without aborting; the
//! replica that takes the lease over re-attaches to the running task; a terminate on a
//! replica that does not own the execution reaches the owner.

mod engine_support;
use engine_support::*;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use flyte_blob::BlobStore;
use flyte_engine::backend::{LocalProcessBackend, LocalProcessConfig};
use flyte_engine::ownership::{LeaseStore, Ownership, OwnershipConfig};
use flyte_engine::{Engine, ExecKey, MemorySink, WorkflowPhase};
use flyteidl::core::*;
use prost::Message;
use tokio::sync::mpsc;

/// Bounds a hung test; asserts nothing about speed.
const WAIT: Duration = Duration::from_secs(60);

/// Leases and notifications in memory, with the store's rules: claim if free, expired or
/// ours; renew only unexpired; take only expired.
#[derive(Default)]
struct Leases {
    held: Mutex<HashMap<ExecKey, (String, Instant)>>,
    listeners: Mutex<Vec<mpsc::Sender<String>>>,
    /// Owners whose takeover finds nothing (so the test knows who takes over).
    never_take: Mutex<HashSet<String>>,
}

impl Leases {
    fn holder_now(&self, key: &ExecKey) -> Option<String> {
        let held = self.held.lock().unwrap();
        held.get(key)
            .filter(|(_, until)| *until > Instant::now())
            .map(|(o, _)| o.clone())
    }

    /// Expires every lease of `owner` (as if it had missed its renewals).
    fn expire(&self, owner: &str) {
        for (o, until) in self.held.lock().unwrap().values_mut() {
            if o == owner {
                *until = Instant::now();
            }
        }
    }
}

#[async_trait]
impl LeaseStore for Leases {
    async fn claim(&self, key: &ExecKey, owner: &str, ttl: Duration) -> Result<bool, String> {
        let mut held = self.held.lock().unwrap();
        let now = Instant::now();
        match held.get(key) {
            Some((o, until)) if o != owner && *until > now => Ok(false),
            _ => {
                held.insert(key.clone(), (owner.to_string(), now + ttl));
                Ok(true)
            }
        }
    }

    async fn renew(&self, owner: &str, ttl: Duration) -> Result<Vec<ExecKey>, String> {
        let now = Instant::now();
        let mut out = Vec::new();
        for (k, (o, until)) in self.held.lock().unwrap().iter_mut() {
            if o == owner && *until > now {
                *until = now + ttl;
                out.push(k.clone());
            }
        }
        Ok(out)
    }

    async fn release(&self, key: &ExecKey, owner: &str, finished: bool) -> Result<(), String> {
        let mut held = self.held.lock().unwrap();
        if held.get(key).is_some_and(|(o, _)| o == owner) {
            if finished {
                held.remove(key);
            } else if let Some(l) = held.get_mut(key) {
                l.1 = Instant::now();
            }
        }
        Ok(())
    }

    async fn release_all(&self, owner: &str) -> Result<(), String> {
        self.expire(owner);
        Ok(())
    }

    async fn take_expired(
        &self,
        owner: &str,
        ttl: Duration,
        limit: usize,
    ) -> Result<Vec<ExecKey>, String> {
        if self.never_take.lock().unwrap().contains(owner) {
            return Ok(vec![]);
        }
        let now = Instant::now();
        let mut out = Vec::new();
        for (k, (o, until)) in self.held.lock().unwrap().iter_mut() {
            if *until <= now && out.len() < limit {
                *o = owner.to_string();
                *until = now + ttl;
                out.push(k.clone());
            }
        }
        Ok(out)
    }

    async fn holder(&self, key: &ExecKey) -> Result<Option<String>, String> {
        Ok(self.holder_now(key))
    }

    async fn notify(&self, payload: &str) -> Result<(), String> {
        let listeners = self.listeners.lock().unwrap().clone();
        for l in listeners {
            let _ = l.send(payload.to_string()).await;
        }
        Ok(())
    }

    async fn listen(&self) -> Result<Option<mpsc::Receiver<String>>, String> {
        let (tx, rx) = mpsc::channel(64);
        self.listeners.lock().unwrap().push(tx);
        Ok(Some(rx))
    }
}

fn ownership(id: &str, leases: &Arc<Leases>) -> Arc<Ownership> {
    let config = OwnershipConfig {
        replica_id: id.into(),
        lease_ttl: Duration::from_millis(900),
        renew_interval: Duration::from_millis(300),
        takeover_interval: Duration::from_millis(100),
    };
    Ownership::new(config, leases.clone())
}

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

    /// A replica's engine over the shared journal, blobs and data dir (replicas on one
    /// machine), running executions under `own`.
    fn engine(&self, sink: &Arc<MemorySink>, own: Arc<Ownership>) -> Engine {
        let mut config = LocalProcessConfig::new(self.root.join("data"), "http://127.0.0.1:1");
        config.kill_grace_period = Duration::from_millis(500);
        let backend = Arc::new(LocalProcessBackend::new(config, self.blob.clone()));
        let mut deps = engine_support::deps(&self.blob, vec![backend], sink);
        deps.config.ownership = Some(own);
        Engine::new(deps)
    }

    /// wf() -> o: int, one shell task node `n0` that appends a line to `runs`, says it
    /// started, waits for `release`, then writes outputs `o = 42`.
    async fn compiled(&self) -> CompiledWorkflowClosure {
        let outputs = LiteralMap {
            literals: [("o".to_string(), int_lit(42))].into(),
        };
        let prepared = self.file("outputs.pb");
        std::fs::write(&prepared, outputs.encode_to_vec()).unwrap();
        let script = format!(
            r#"echo ran >> "{runs}"
echo started > "{started}"
while [ ! -f "{release}" ]; do sleep 0.05; done
out="${{1#file://}}"
mkdir -p "$out" && cp "{prepared}" "$out/outputs.pb""#,
            runs = self.file("runs").display(),
            started = self.file("started").display(),
            release = self.file("release").display(),
            prepared = prepared.display(),
        );
        shell_task_workflow(&script)
    }
}

fn runs(setup: &Setup) -> usize {
    std::fs::read_to_string(setup.file("runs"))
        .unwrap_or_default()
        .lines()
        .count()
}

async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    tokio::time::timeout(WAIT, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{what}: not within {WAIT:?}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_lease_stops_the_execution_unaborted_and_the_taker_reattaches() {
    let setup = Setup::new();
    let journal = MemorySink::new();
    let leases = Arc::new(Leases::default());
    let a = setup.engine(&journal, ownership("a", &leases));
    let b = setup.engine(&journal, ownership("b", &leases));
    leases.never_take.lock().unwrap().insert("a".into());
    a.start_ownership().await.unwrap();
    b.start_ownership().await.unwrap();

    let req = request("moved", setup.compiled().await, &[]);
    let id = req.id.clone();
    let key = ExecKey::of(&id);
    a.start_execution(req).await.expect("starts on a");
    assert_eq!(leases.holder_now(&key).as_deref(), Some("a"));
    // b's start-up resume leaves a's execution alone: a holds it.
    assert_eq!(b.resume_all().await.unwrap(), 0);
    assert!(!b.is_running(&id));
    wait_for(&setup.file("started")).await;

    // a misses its renewals: its lease expires, a stops the execution, b takes it over.
    leases.expire("a");
    until("a stops the execution", || !a.is_running(&id)).await;
    until("b takes the execution over", || b.is_running(&id)).await;
    assert_eq!(leases.holder_now(&key).as_deref(), Some("b"));
    assert!(
        journal
            .workflow_events("moved")
            .iter()
            .all(|e| e.phase != flyteidl::core::workflow_execution::Phase::Aborted as i32),
        "a stopped without aborting"
    );

    std::fs::write(setup.file("release"), "").unwrap();
    let phase = tokio::time::timeout(WAIT, b.wait(&id)).await.unwrap();
    assert_eq!(phase, Some(WorkflowPhase::Succeeded));
    assert_eq!(
        runs(&setup),
        1,
        "the task body ran once: b re-attached to a's process"
    );
    let record = journal.node_record(&key, "n0").expect("n0 journaled");
    assert_eq!(record.attempt, 0, "no new attempt");
    until("the finished execution's lease goes", || {
        leases.held.lock().unwrap().get(&key).is_none()
    })
    .await;
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminate_on_another_replica_reaches_the_owner() {
    let setup = Setup::new();
    let journal = MemorySink::new();
    let leases = Arc::new(Leases::default());
    let a = setup.engine(&journal, ownership("a", &leases));
    let b = setup.engine(&journal, ownership("b", &leases));
    a.start_ownership().await.unwrap();
    b.start_ownership().await.unwrap();

    let req = request("stopped", setup.compiled().await, &[]);
    let id = req.id.clone();
    a.start_execution(req).await.expect("starts on a");
    wait_for(&setup.file("started")).await;
    assert!(
        b.abort_anywhere(&id, "stop it").await.unwrap(),
        "b knows a runs it"
    );
    let phase = tokio::time::timeout(WAIT, a.wait(&id)).await.unwrap();
    assert_eq!(phase, Some(WorkflowPhase::Aborted), "a aborted it");
    assert!(!b.is_running(&id));
    // Not running anywhere any more (its lease goes when it ends): nothing to route.
    let key = ExecKey::of(&id);
    until("the lease goes", || {
        leases.held.lock().unwrap().get(&key).is_none()
    })
    .await;
    assert!(!b.abort_anywhere(&id, "again").await.unwrap());
    a.shutdown().await;
    b.shutdown().await;
}

/// An `abort` notification lost while the owner's listener reconnected: the terminate's
/// pending abort is in the journal, and the owner applies it when told of the gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_abort_missed_during_a_listener_gap_is_applied() {
    let setup = Setup::new();
    let journal = MemorySink::new();
    let leases = Arc::new(Leases::default());
    let a = setup.engine(&journal, ownership("a", &leases));
    a.start_ownership().await.unwrap();

    let req = request("gap", setup.compiled().await, &[]);
    let id = req.id.clone();
    a.start_execution(req).await.expect("starts on a");
    wait_for(&setup.file("started")).await;
    // The terminate journaled its abort; its notification was lost.
    journal.set_pending_abort(&ExecKey::of(&id), "stopped during the gap");
    leases.notify("").await.unwrap();
    let phase = tokio::time::timeout(WAIT, a.wait(&id)).await.unwrap();
    assert_eq!(phase, Some(WorkflowPhase::Aborted));
    a.shutdown().await;
}

/// The journal as the admin's store sink writes it for replicas: a batch commits only while
/// its replica holds the execution's lease, else `LeaseLost` and nothing is written (the
/// store's fenced transition; its SQL is in flyte-store's conformance suite).
struct FencedSink {
    inner: Arc<MemorySink>,
    leases: Arc<Leases>,
    owner: String,
}

#[async_trait]
impl flyte_engine::EventSink for FencedSink {
    async fn record(
        &self,
        batch: &flyte_engine::EventBatch,
    ) -> Result<(), flyte_engine::SinkError> {
        let key = ExecKey::of(&batch.execution);
        if self.leases.holder_now(&key).as_deref() != Some(self.owner.as_str()) {
            return Err(flyte_engine::SinkError::LeaseLost(key.to_string()));
        }
        self.inner.record(batch).await
    }
}

/// A replica that lost its lease but has not noticed yet (no heartbeat in between) commits
/// its next batch: the commit is refused and its actor stops there, unaborted, instead of
/// writing the execution's end beside the new owner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_owners_commit_is_refused_and_its_actor_stops_unaborted() {
    let setup = Setup::new();
    let journal = MemorySink::new();
    let leases = Arc::new(Leases::default());
    let fenced = |owner: &str, own: Arc<Ownership>| {
        let mut config = LocalProcessConfig::new(setup.root.join("data"), "http://127.0.0.1:1");
        config.kill_grace_period = Duration::from_millis(500);
        let backend = Arc::new(LocalProcessBackend::new(config, setup.blob.clone()));
        let mut deps = engine_support::deps(&setup.blob, vec![backend], &journal);
        deps.sink = Arc::new(FencedSink {
            inner: journal.clone(),
            leases: leases.clone(),
            owner: owner.into(),
        });
        deps.config.ownership = Some(own);
        Engine::new(deps)
    };
    // a renews only every minute: it cannot notice the loss before its next commit.
    let slow = Ownership::new(
        OwnershipConfig {
            replica_id: "a".into(),
            lease_ttl: Duration::from_secs(180),
            renew_interval: Duration::from_secs(60),
            takeover_interval: Duration::from_secs(60),
        },
        leases.clone(),
    );
    let a = fenced("a", slow);
    let b = fenced("b", ownership("b", &leases));
    leases.never_take.lock().unwrap().insert("a".into());
    a.start_ownership().await.unwrap();
    b.start_ownership().await.unwrap();

    let req = request("stale", setup.compiled().await, &[]);
    let id = req.id.clone();
    let key = ExecKey::of(&id);
    a.start_execution(req).await.expect("starts on a");
    wait_for(&setup.file("started")).await;

    // a's lease expires and b takes the execution over while a still runs it.
    leases.expire("a");
    until("b takes the execution over", || b.is_running(&id)).await;
    assert!(a.is_running(&id), "a has not noticed");

    // The task ends: both replicas see it; only b's commit may land.
    std::fs::write(setup.file("release"), "").unwrap();
    let on_a = tokio::time::timeout(WAIT, a.wait(&id)).await.unwrap();
    assert_eq!(
        on_a, None,
        "a's actor stopped without finishing the execution"
    );
    let on_b = tokio::time::timeout(WAIT, b.wait(&id)).await.unwrap();
    assert_eq!(on_b, Some(WorkflowPhase::Succeeded));
    let phases: Vec<i32> = journal
        .workflow_events("stale")
        .iter()
        .map(|e| e.phase)
        .collect();
    let succeeded = flyteidl::core::workflow_execution::Phase::Succeeded as i32;
    let aborted = flyteidl::core::workflow_execution::Phase::Aborted as i32;
    assert_eq!(
        phases.iter().filter(|p| **p == succeeded).count(),
        1,
        "only the owner recorded the end: {phases:?}"
    );
    assert!(!phases.contains(&aborted), "nothing aborted: {phases:?}");
    // Not asserted: how often the body ran. Both replicas watch the one process here (one
    // data dir), and a's reaping it can make b's re-attach run the attempt again.
    until("the finished execution's lease goes", || {
        leases.held.lock().unwrap().get(&key).is_none()
    })
    .await;
    a.shutdown().await;
    b.shutdown().await;
}
