//! Ownership of executions among engine replicas sharing one database (PostgreSQL).
//!
//! Each running execution is owned by one replica through a lease in the store: the engine
//! claims it before an actor starts ([`Ownership::claim`] in `Engine::spawn`), a heartbeat
//! renews every lease this replica holds, and an actor whose lease was not renewed stops
//! without aborting anything (as at a graceful shutdown), so an execution never runs on two
//! replicas at once. A takeover loop claims leases that expired (their owner died or lost the
//! database) and resumes those executions from the journal, re-attaching to their attempts.
//! Requests that must reach an execution's owner (terminate, a set signal, a child execution
//! that ended) travel as notifications (PostgreSQL `LISTEN`/`NOTIFY`) and are delivered to
//! the local actor at once.
//!
//! Without an [`Ownership`] (SQLite, one process) the engine owns everything it runs and
//! none of this runs.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use flyteidl::core::WorkflowExecutionIdentifier;
use tokio::sync::mpsc;

use crate::engine::{Engine, EngineError};
use crate::exec::Control;
use crate::request::ExecKey;

/// The store's side of leases and notifications (implemented over the metadata store by the
/// binary). Lease times are the implementation's clock (the database's, so replicas'
/// clocks need not agree); callers give only lease lengths.
#[async_trait]
pub trait LeaseStore: Send + Sync + 'static {
    /// Takes the lease of `key` for `owner` for `ttl` if free, expired or already `owner`'s;
    /// true if `owner` holds it now.
    async fn claim(&self, key: &ExecKey, owner: &str, ttl: Duration) -> Result<bool, String>;
    /// Extends every unexpired lease of `owner` by `ttl`; the executions renewed.
    async fn renew(&self, owner: &str, ttl: Duration) -> Result<Vec<ExecKey>, String>;
    /// Deletes (`finished`) or expires `owner`'s lease of `key`.
    async fn release(&self, key: &ExecKey, owner: &str, finished: bool) -> Result<(), String>;
    /// Expires every lease of `owner` (graceful stop: others take over at once).
    async fn release_all(&self, owner: &str) -> Result<(), String>;
    /// Takes up to `limit` expired leases for `owner` for `ttl`.
    async fn take_expired(
        &self,
        owner: &str,
        ttl: Duration,
        limit: usize,
    ) -> Result<Vec<ExecKey>, String>;
    /// The replica holding a live lease of `key`, if any.
    async fn holder(&self, key: &ExecKey) -> Result<Option<String>, String>;
    /// Sends `payload` to every replica's listener.
    async fn notify(&self, payload: &str) -> Result<(), String>;
    /// What every replica notifies from now on (an empty payload: some may have been lost).
    async fn listen(&self) -> Result<Option<mpsc::Receiver<String>>, String>;
}

/// Lease timing and this replica's identity.
#[derive(Debug, Clone)]
pub struct OwnershipConfig {
    /// Unique among the replicas (and across restarts, unless a restarted replica should
    /// get its executions back at once).
    pub replica_id: String,
    /// How long a lease lasts without renewal: a dead replica's executions move on after at
    /// most this plus `takeover_interval`.
    pub lease_ttl: Duration,
    /// Between renewals; several fit in `lease_ttl` so one slow round does not lose leases.
    pub renew_interval: Duration,
    /// Between scans for expired leases.
    pub takeover_interval: Duration,
}

impl OwnershipConfig {
    pub fn new(replica_id: impl Into<String>) -> Self {
        Self {
            replica_id: replica_id.into(),
            lease_ttl: Duration::from_secs(6),
            renew_interval: Duration::from_secs(2),
            takeover_interval: Duration::from_secs(1),
        }
    }
}

/// Executions this replica may run; shared by the engine and its loops.
pub struct Ownership {
    config: OwnershipConfig,
    store: Arc<dyn LeaseStore>,
    /// When the last renewal succeeded: without one for `lease_ttl - renew_interval`, this
    /// replica gives up everything before its leases can expire under it.
    last_renewed: Mutex<Instant>,
}

impl std::fmt::Debug for Ownership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ownership")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

const TAKEOVER_BATCH: usize = 100;

impl Ownership {
    pub fn new(config: OwnershipConfig, store: Arc<dyn LeaseStore>) -> Arc<Self> {
        Arc::new(Self {
            config,
            store,
            last_renewed: Mutex::new(Instant::now()),
        })
    }

    pub fn replica_id(&self) -> &str {
        &self.config.replica_id
    }

    /// Before an actor starts: Ok if this replica holds the lease now.
    pub(crate) async fn claim(&self, key: &ExecKey) -> Result<(), EngineError> {
        match self
            .store
            .claim(key, &self.config.replica_id, self.config.lease_ttl)
            .await
        {
            Ok(true) => Ok(()),
            Ok(false) => Err(EngineError::OwnedElsewhere(key.to_string())),
            Err(e) => Err(EngineError::Lease(e)),
        }
    }

    /// An actor ended: a finished execution's lease goes, and whoever waits for it as a child
    /// hears (its parent may run on another replica).
    pub(crate) async fn ended(&self, key: &ExecKey, finished: bool) {
        if let Err(e) = self
            .store
            .release(key, &self.config.replica_id, finished)
            .await
        {
            tracing::warn!(execution = %key, error = %e, "cannot release the execution's lease (it expires by itself)");
        }
        if finished
            && let Err(e) = self
                .store
                .notify(&Message::Ended(key.clone()).encode())
                .await
        {
            tracing::warn!(execution = %key, error = %e, "cannot notify that the execution ended (a waiting parent polls)");
        }
    }

    pub(crate) async fn release_all(&self) {
        if let Err(e) = self.store.release_all(&self.config.replica_id).await {
            tracing::warn!(replica = %self.config.replica_id, error = %e, "cannot release leases at shutdown (they expire by themselves)");
        }
    }
}

/// What one replica tells the owner of an execution.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Message {
    Abort(ExecKey, String),
    Signal(ExecKey, String),
    Ended(ExecKey),
}

impl Message {
    fn encode(&self) -> String {
        let (kind, key, arg) = match self {
            Message::Abort(k, cause) => ("abort", k, cause.as_str()),
            Message::Signal(k, id) => ("signal", k, id.as_str()),
            Message::Ended(k) => ("ended", k, ""),
        };
        // Tabs separate; the last field (a cause) may hold anything but is cut to fit
        // PostgreSQL's payload limit.
        let mut out = format!("{kind}\t{}\t{}\t{}\t", key.project, key.domain, key.name);
        let room = 7000usize.saturating_sub(out.len());
        let mut end = arg.len().min(room);
        while !arg.is_char_boundary(end) {
            end -= 1;
        }
        out.push_str(&arg[..end]);
        out
    }

    fn decode(s: &str) -> Option<Self> {
        let mut parts = s.splitn(5, '\t');
        let kind = parts.next()?;
        let key = ExecKey {
            project: parts.next()?.to_string(),
            domain: parts.next()?.to_string(),
            name: parts.next()?.to_string(),
        };
        let arg = parts.next().unwrap_or_default().to_string();
        match kind {
            "abort" => Some(Message::Abort(key, arg)),
            "signal" => Some(Message::Signal(key, arg)),
            "ended" => Some(Message::Ended(key)),
            _ => None,
        }
    }
}

fn wf_id(key: &ExecKey) -> WorkflowExecutionIdentifier {
    WorkflowExecutionIdentifier {
        project: key.project.clone(),
        domain: key.domain.clone(),
        name: key.name.clone(),
        ..Default::default()
    }
}

impl Engine {
    /// Starts this replica's heartbeat, takeover and notification loops (after
    /// [`Engine::resume_all`]); nothing without an [`Ownership`]. They end with the engine's
    /// shutdown.
    pub async fn start_ownership(&self) -> Result<(), EngineError> {
        let Some(own) = self.ownership() else {
            return Ok(());
        };
        *own.last_renewed.lock().unwrap() = Instant::now();
        let listener = own.store.listen().await.map_err(EngineError::Lease)?;
        if let Some(rx) = listener {
            tokio::spawn(listen_loop(self.handle(), rx));
        }
        tokio::spawn(heartbeat_loop(self.handle(), own.clone()));
        tokio::spawn(takeover_loop(self.handle(), own));
        Ok(())
    }

    /// Aborts an execution wherever it runs: here, or at the replica holding its lease (the
    /// terminate's pending abort is journaled already, so a replica that takes it over later
    /// aborts it too). Ok(false): no replica runs it.
    pub async fn abort_anywhere(
        &self,
        id: &WorkflowExecutionIdentifier,
        cause: &str,
    ) -> Result<bool, EngineError> {
        match self.abort(id, cause) {
            Ok(()) => return Ok(true),
            Err(EngineError::NotRunning(_)) => {}
            Err(e) => return Err(e),
        }
        let Some(own) = self.ownership() else {
            return Ok(false);
        };
        let key = ExecKey::of(id);
        match own.store.holder(&key).await.map_err(EngineError::Lease)? {
            None => Ok(false),
            Some(holder) => {
                tracing::info!(execution = %key, %holder, "abort sent to the replica running the execution");
                let msg = Message::Abort(key, cause.to_string()).encode();
                own.store.notify(&msg).await.map_err(EngineError::Lease)?;
                Ok(true)
            }
        }
    }

    /// A signal was set: wakes the gate here, or tells the other replicas (the owner's gate
    /// wakes; a gate also polls, so a lost notification only delays it).
    pub async fn signal_set_anywhere(&self, execution: &WorkflowExecutionIdentifier, id: &str) {
        if self.signal_set(execution, id) {
            return;
        }
        if let Some(own) = self.ownership() {
            let msg = Message::Signal(ExecKey::of(execution), id.to_string()).encode();
            if let Err(e) = own.store.notify(&msg).await {
                tracing::warn!(execution = %ExecKey::of(execution), error = %e, "cannot notify the signal's owner (its gate polls)");
            }
        }
    }

    /// Stops the actors of `keys` without aborting anything: their leases are gone.
    fn relinquish(&self, keys: &[ExecKey]) {
        let mut map = self.shared.executions.lock().unwrap();
        for key in keys {
            if let Some(h) = map.remove(key) {
                tracing::warn!(execution = %key, "lease lost: the execution stops here (another replica takes it over)");
                let _ = h.control.send(Control::Shutdown);
            }
        }
    }

    fn running_keys(&self) -> Vec<ExecKey> {
        self.shared
            .executions
            .lock()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    }

    fn stopping(&self) -> bool {
        self.shared
            .shutting_down
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Resumes the executions whose expired leases this replica just took; a taken lease of
    /// an execution no longer running goes.
    async fn take_over(&self, own: &Ownership, keys: Vec<ExecKey>) {
        let running = match self.shared.journal.load_running().await {
            Ok(r) => r,
            Err(e) => {
                // Expire them again so this or another replica retries.
                tracing::warn!(error = %e, "takeover: cannot load the journal");
                for k in &keys {
                    let _ = own.store.release(k, own.replica_id(), false).await;
                }
                return;
            }
        };
        let mut wanted: HashSet<ExecKey> = keys.into_iter().collect();
        for r in running {
            let key = r.request.key();
            if !wanted.remove(&key) {
                continue;
            }
            tracing::info!(execution = %key, replica = %own.replica_id(), "taking the execution over");
            match self.spawn(crate::exec::Start::Resume(Box::new(r))).await {
                Ok(()) | Err(EngineError::AlreadyRunning(_)) => {}
                Err(e) => {
                    tracing::error!(execution = %key, error = %e, "cannot resume a taken-over execution");
                    let _ = own.store.release(&key, own.replica_id(), false).await;
                }
            }
        }
        for gone in wanted {
            let _ = own.store.release(&gone, own.replica_id(), true).await;
        }
    }

    /// Aborts the executions running here whose terminate is journaled: an `abort`
    /// notification sent while the listener was reconnecting is lost, the pending abort is not.
    async fn apply_pending_aborts(&self) {
        match self.shared.journal.load_running().await {
            Ok(running) => {
                for r in running {
                    if let Some(cause) = &r.pending_abort {
                        // Not running here: another replica's business.
                        let _ = self.abort(&r.request.id, cause);
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read pending aborts"),
        }
    }

    /// A child execution ended on some replica: wake its parent's node if the parent runs here.
    fn child_ended(&self, child: &ExecKey) {
        let parent = self.shared.children.lock().unwrap().remove(child);
        if let Some((parent, node)) = parent {
            let map = self.shared.executions.lock().unwrap();
            if let Some(h) = map.get(&parent) {
                let _ = h.control.send(Control::ChildEnded(node));
            }
        }
    }
}

async fn heartbeat_loop(engine: crate::engine::EngineHandle, own: Arc<Ownership>) {
    let c = own.config.clone();
    let mut tick = tokio::time::interval(c.renew_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(engine) = engine.engine() else {
            return;
        };
        if engine.stopping() {
            return;
        }
        // Executions claimed before this snapshot had their lease before the renewal runs:
        // one missing from the renewed set expired (or was taken).
        let local = engine.running_keys();
        match own.store.renew(&c.replica_id, c.lease_ttl).await {
            Ok(renewed) => {
                *own.last_renewed.lock().unwrap() = Instant::now();
                let renewed: HashSet<ExecKey> = renewed.into_iter().collect();
                let lost: Vec<ExecKey> =
                    local.into_iter().filter(|k| !renewed.contains(k)).collect();
                engine.relinquish(&lost);
            }
            Err(e) => {
                let since = own.last_renewed.lock().unwrap().elapsed();
                tracing::warn!(replica = %c.replica_id, error = %e, since_s = since.as_secs_f64(), "cannot renew leases");
                // Stop before the leases can expire and another replica resume them.
                if since + c.renew_interval >= c.lease_ttl {
                    tracing::error!(replica = %c.replica_id, "leases not renewed in time: stopping every execution here");
                    engine.relinquish(&local);
                }
            }
        }
    }
}

async fn takeover_loop(engine: crate::engine::EngineHandle, own: Arc<Ownership>) {
    let c = own.config.clone();
    let mut tick = tokio::time::interval(c.takeover_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(engine) = engine.engine() else {
            return;
        };
        if engine.stopping() {
            return;
        }
        match own
            .store
            .take_expired(&c.replica_id, c.lease_ttl, TAKEOVER_BATCH)
            .await
        {
            Ok(keys) if keys.is_empty() => {}
            Ok(keys) => engine.take_over(&own, keys).await,
            Err(e) => {
                tracing::warn!(replica = %c.replica_id, error = %e, "cannot look for expired leases")
            }
        }
    }
}

async fn listen_loop(engine: crate::engine::EngineHandle, mut rx: mpsc::Receiver<String>) {
    while let Some(payload) = rx.recv().await {
        let Some(engine) = engine.engine() else {
            return;
        };
        if engine.stopping() {
            return;
        }
        if payload.is_empty() {
            tracing::warn!(
                "notification connection was lost: re-reading pending aborts (gates poll)"
            );
            engine.apply_pending_aborts().await;
            continue;
        }
        match Message::decode(&payload) {
            Some(Message::Abort(key, cause)) => {
                // Not running here: another replica's business.
                let _ = engine.abort(&wf_id(&key), &cause);
            }
            Some(Message::Signal(key, id)) => {
                engine.signal_set(&wf_id(&key), &id);
            }
            Some(Message::Ended(key)) => engine.child_ended(&key),
            None => tracing::warn!(%payload, "unknown notification ignored"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let key = ExecKey {
            project: "p".into(),
            domain: "d".into(),
            name: "n".into(),
        };
        for m in [
            Message::Abort(key.clone(), "because\twhy".into()),
            Message::Signal(key.clone(), "sig".into()),
            Message::Ended(key.clone()),
        ] {
            assert_eq!(Message::decode(&m.encode()), Some(m));
        }
        let long = Message::Abort(key, "é".repeat(10_000)).encode();
        assert!(long.len() < 8000);
        assert_eq!(Message::decode("nonsense"), None);
    }
}
