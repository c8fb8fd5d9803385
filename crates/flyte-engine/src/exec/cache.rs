//! Task output caching in the actor (docs/cache.md, "Hand-over"), as propeller does it:
//!
//! * [`ExecActor::cache_lookup`] (task node start, after QUEUED): for a `discoverable` task,
//!   the key from the resolved inputs (per index in a map task); unless `overwrite_cache`, a
//!   lookup — a hit writes the cached outputs to the node's `outputs.pb` and succeeds the node
//!   without running it (CACHE_HIT + catalog key). With `cache_serializable` the reservation is
//!   taken (owner: the node execution); held by another execution, the attempt waits
//!   ([`ExecActor::cache_defer_start`]) outside the actor until the holder releases it or it
//!   expires, then looks up again (hit: the attempt "succeeds" with the cached outputs) or
//!   runs.
//! * [`ExecActor::cache_after_success`]: puts the outputs (CACHE_POPULATED, or
//!   CACHE_PUT_FAILURE — the node still succeeds); releases the reservation.
//! * [`ExecActor::cache_node_ended`]: a node that did not succeed releases its reservation;
//!   nothing is put.
//! * The status goes into the node events' `TaskNodeMetadata` ([`ExecActor::cache_metadata`])
//!   and map tasks' `ExternalResourceInfo.cache_status` ([`ExecActor::cache_status_of`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use flyte_blob::BlobStore;
use flyte_cache::{CacheHit, CacheKey, TaskCache};
use flyteidl::core::{
    CatalogCacheStatus, CatalogMetadata, LiteralMap, TaskExecutionIdentifier,
    catalog_reservation::Status as ReservationStatus, execution_error::ErrorKind,
};
use flyteidl::event::TaskNodeMetadata;
use prost::Message;
use tokio::sync::mpsc;

use super::{ExecActor, error_at};
use crate::backend::{
    AttemptKey, AttemptOutcome, AttemptUpdate, BackendError, TaskAttempt, TaskBackend,
};
use crate::layout;

/// The reservation heartbeat asked for (the cache caps it; the lease is a few heartbeats).
const HEARTBEAT: Duration = Duration::from_secs(5);
/// How often a waiting execution asks for the reservation again.
const POLL: Duration = Duration::from_millis(200);

type Updates = mpsc::UnboundedSender<(AttemptKey, AttemptUpdate)>;

/// A task node's cache state for its current execution.
pub(super) struct NodeCache {
    key: Option<CacheKey>,
    status: CatalogCacheStatus,
    catalog: Option<CatalogMetadata>,
    reservation: ReservationStatus,
    overwrite: bool,
    owner: String,
    /// The reservation is held by another execution: the first attempt waits for it.
    wait: bool,
    /// Set by a waiter that found the outputs cached after all.
    waited_hit: Arc<Mutex<Option<CacheHit>>>,
    /// Stops the heartbeat / waiter.
    stop: Arc<AtomicBool>,
}

impl NodeCache {
    fn new(status: CatalogCacheStatus) -> Self {
        Self {
            key: None,
            status,
            catalog: None,
            reservation: ReservationStatus::ReservationDisabled,
            overwrite: false,
            owner: String::new(),
            wait: false,
            waited_hit: Default::default(),
            stop: Default::default(),
        }
    }

    fn serialized(&self) -> bool {
        self.reservation != ReservationStatus::ReservationDisabled
    }
}

impl ExecActor {
    fn task_cache(&self) -> Option<Arc<dyn TaskCache>> {
        self.shared.cache.clone()
    }

    /// The owner of a node's reservations: the node execution.
    fn cache_owner(&self, idx: usize) -> String {
        format!(
            "{}-{}-{}-{}",
            self.id.project, self.id.domain, self.id.name, self.nodes[idx].rec.node_id
        )
    }

    /// The inputs the key is computed from: the node's, or its index's slice of a map task's.
    async fn cache_inputs(
        &mut self,
        idx: usize,
        inputs: &Arc<LiteralMap>,
    ) -> Result<Arc<LiteralMap>, String> {
        match self.nodes[idx].array_ctx {
            Some((arr, i))
                if self.nodes[idx].parent == Some(arr) && self.array_reads_whole_inputs(arr) =>
            {
                self.array_index_inputs(arr, i).await.map(Arc::new)
            }
            _ => Ok(inputs.clone()),
        }
    }

    /// Called when a task node starts (after QUEUED). True if it succeeded from the cache and
    /// must not run.
    pub(super) async fn cache_lookup(&mut self, idx: usize, inputs: &Arc<LiteralMap>) -> bool {
        self.nodes[idx].state.set_cache(None);
        let Some(cache) = self.task_cache() else {
            return false;
        };
        let Some(template) = self.nodes[idx].kind.task().cloned() else {
            return false;
        };
        let discoverable = template.metadata.as_ref().is_some_and(|m| m.discoverable);
        if !discoverable {
            return false;
        }
        let serializable = template
            .metadata
            .as_ref()
            .is_some_and(|m| m.cache_serializable);
        let key = match self.cache_inputs(idx, inputs).await {
            Ok(inputs) => {
                CacheKey::for_task(&template, &inputs).map(|r| r.map_err(|e| e.to_string()))
            }
            Err(e) => Some(Err(e)),
        };
        let key = match key {
            None => return false,
            Some(Ok(k)) => k,
            Some(Err(e)) => {
                tracing::warn!(node = %self.nodes[idx].rec.node_id, error = %e, "no cache key; running the task");
                self.nodes[idx]
                    .state
                    .set_cache(Some(NodeCache::new(CatalogCacheStatus::CacheLookupFailure)));
                return false;
            }
        };
        let mut nc = self.node_cache(idx, key.clone());
        let overwrite = nc.overwrite;
        if !overwrite {
            match cache.lookup(&key).await {
                Ok(Some(hit)) => {
                    self.nodes[idx].state.set_cache(Some(nc));
                    if self.succeed_from_cache(idx, hit).await {
                        return true;
                    }
                    if let Some(nc) = self.nodes[idx].state.cache_mut() {
                        nc.status = CatalogCacheStatus::CacheLookupFailure;
                    }
                    return false;
                }
                Ok(None) => {}
                Err(_) => nc.status = CatalogCacheStatus::CacheLookupFailure,
            }
        }
        if serializable {
            match self.acquire_reservation(&cache, &key, &mut nc).await {
                Ok(true) => {
                    // Someone may have stored the outputs between the lookup and now.
                    if !overwrite && let Ok(Some(hit)) = cache.lookup(&key).await {
                        self.nodes[idx].state.set_cache(Some(nc));
                        if self.succeed_from_cache(idx, hit).await {
                            return true;
                        }
                        return false;
                    }
                }
                Ok(false) => nc.wait = !overwrite,
                Err(e) => {
                    tracing::warn!(key = %key, error = %e, "cache reservation failed; running the task");
                }
            }
        }
        self.nodes[idx].state.set_cache(Some(nc));
        false
    }

    /// A node's cache state before anything is known: a miss (or skipped, to be overwritten).
    fn node_cache(&self, idx: usize, key: CacheKey) -> NodeCache {
        let overwrite = self.req.overwrite_cache;
        let mut nc = NodeCache::new(if overwrite {
            CatalogCacheStatus::CacheSkipped
        } else {
            CatalogCacheStatus::CacheMiss
        });
        nc.key = Some(key);
        nc.overwrite = overwrite;
        nc.owner = self.cache_owner(idx);
        nc
    }

    /// Asks for the node's `cache_serialize` reservation and records the answer in `nc`; a
    /// reservation it holds is kept alive in the background. True if it holds it.
    async fn acquire_reservation(
        &self,
        cache: &Arc<dyn TaskCache>,
        key: &CacheKey,
        nc: &mut NodeCache,
    ) -> Result<bool, String> {
        match cache
            .get_or_extend_reservation(key, &nc.owner, HEARTBEAT)
            .await
        {
            Ok(r) if r.is_held_by(&nc.owner) => {
                nc.reservation = ReservationStatus::ReservationAcquired;
                tokio::spawn(keep_reservation(
                    cache.clone(),
                    key.clone(),
                    nc.owner.clone(),
                    nc.stop.clone(),
                    self.updates_tx.clone(),
                ));
                Ok(true)
            }
            Ok(_) => {
                nc.reservation = ReservationStatus::ReservationExists;
                Ok(false)
            }
            Err(e) => {
                nc.reservation = ReservationStatus::ReservationFailure;
                Err(e.to_string())
            }
        }
    }

    /// After a restart, for a cacheable task node that was running: rebuilds its cache state
    /// from its `inputs.pb` so that its outputs are stored when it succeeds, and takes its
    /// `cache_serialize` reservation back (the owner is the node execution, not the process,
    /// so a reservation it held is still its own). With `rerun` (its attempt is about to run
    /// again) it behaves as before the crash: it looks the cache up again (another execution
    /// may have stored the outputs meanwhile; a hit succeeds the node and true is returned,
    /// nothing runs), and waits while another execution holds the reservation. A dynamic
    /// node whose workflow is already running (`rerun` false) only takes the reservation back.
    pub(super) async fn cache_resume(&mut self, idx: usize, rerun: bool) -> bool {
        let Some(cache) = self.task_cache() else {
            return false;
        };
        let Some(template) = self.nodes[idx].kind.task().cloned() else {
            return false;
        };
        let Some(meta) = template.metadata.as_ref().filter(|m| m.discoverable) else {
            return false;
        };
        if self.nodes[idx].array_ctx.is_some() {
            return false;
        }
        let held = self.nodes[idx].state.task().and_then(|t| t.inputs.clone());
        let inputs = match held {
            Some(map) => (*map).clone(),
            None => match self.shared.blob.get(&self.nodes[idx].inputs_file()).await {
                Ok(bytes) => match LiteralMap::decode(bytes) {
                    Ok(map) => map,
                    Err(_) => return false,
                },
                Err(flyte_blob::BlobError::NotFound(_)) => LiteralMap::default(),
                Err(_) => return false,
            },
        };
        let Some(Ok(key)) = CacheKey::for_task(&template, &inputs) else {
            return false;
        };
        let mut nc = self.node_cache(idx, key.clone());
        let lookup = rerun && !nc.overwrite;
        if lookup && let Ok(Some(hit)) = cache.lookup(&key).await {
            self.nodes[idx].state.set_cache(Some(nc));
            return self.succeed_from_cache(idx, hit).await;
        }
        if meta.cache_serializable {
            // Held by another execution: wait for it as the first attempt did (a reservation
            // left by the dead server expires after a few heartbeats). A store failure: run.
            if let Ok(false) = self.acquire_reservation(&cache, &key, &mut nc).await {
                nc.wait = lookup;
            } else if lookup && let Ok(Some(hit)) = cache.lookup(&key).await {
                // Stored between the lookup and taking the reservation.
                self.nodes[idx].state.set_cache(Some(nc));
                return self.succeed_from_cache(idx, hit).await;
            }
        }
        self.nodes[idx].state.set_cache(Some(nc));
        false
    }

    /// A hit: the cached outputs become the node's, and it succeeds. False if they cannot be
    /// written (the node then runs).
    async fn succeed_from_cache(&mut self, idx: usize, hit: CacheHit) -> bool {
        let out = layout::outputs_file(&self.nodes[idx].output_dir());
        if let Err(e) = self
            .shared
            .put_blob(&out, Bytes::from(hit.outputs.encode_to_vec()))
            .await
        {
            tracing::warn!(error = %e, "cannot write cached outputs; running the task");
            return false;
        }
        let release = match self.nodes[idx].state.cache_mut() {
            Some(nc) => {
                nc.status = CatalogCacheStatus::CacheHit;
                nc.catalog = Some(hit.catalog);
                take_reservation(nc)
            }
            None => None,
        };
        if let (Some(cache), Some((key, owner))) = (self.task_cache(), release) {
            let _ = cache.release_reservation(&key, &owner).await;
        }
        if self.nodes[idx].array_ctx.is_some() {
            // The index reports SUCCEEDED (with CACHE_HIT) in the map task's event.
            self.task_event(
                idx,
                flyteidl::core::task_execution::Phase::Succeeded,
                None,
                None,
            );
        }
        self.node_succeeded(idx, out, Some(Arc::new(hit.outputs)));
        true
    }

    /// Called before an attempt goes to its backend: the first attempt of a node whose
    /// reservation another execution holds waits for it instead (None).
    pub(super) fn cache_defer_start(
        &mut self,
        idx: usize,
        attempt: TaskAttempt,
        backend: &Arc<dyn TaskBackend>,
    ) -> Option<TaskAttempt> {
        let Some(cache) = self.task_cache() else {
            return Some(attempt);
        };
        let out_file = layout::outputs_file(&self.nodes[idx].output_dir());
        let node_span = self.nodes[idx].span.clone();
        let Some(nc) = self.nodes[idx].state.cache_mut() else {
            return Some(attempt);
        };
        let Some(key) = nc.key.clone().filter(|_| nc.wait) else {
            return Some(attempt);
        };
        nc.wait = false;
        tokio::spawn(tracing::Instrument::instrument(
            wait_for_reservation(Waiter {
                cache,
                key,
                owner: nc.owner.clone(),
                attempt,
                backend: backend.clone(),
                updates: self.updates_tx.clone(),
                blob: self.shared.blob.clone(),
                out_file,
                hit: nc.waited_hit.clone(),
                stop: nc.stop.clone(),
                clock: self.shared.config.clock.clone(),
            }),
            node_span,
        ));
        None
    }

    /// Called when a task node's attempt succeeded, before the node succeeds: stores the
    /// outputs (or notes the hit a waiter found) and releases the reservation.
    pub(super) async fn cache_after_success(&mut self, idx: usize, outputs: &LiteralMap) {
        let Some(cache) = self.task_cache() else {
            return;
        };
        let source = TaskExecutionIdentifier {
            task_id: self.nodes[idx].kind.task().and_then(|t| t.id.clone()),
            node_execution_id: Some(self.node_exec_id(idx)),
            retry_attempt: self.nodes[idx].rec.attempt,
        };
        let Some(nc) = self.nodes[idx].state.cache_mut() else {
            return;
        };
        let Some(key) = nc.key.clone() else {
            return;
        };
        let waited = nc.waited_hit.lock().unwrap().take();
        if let Some(hit) = waited {
            nc.status = CatalogCacheStatus::CacheHit;
            nc.catalog = Some(hit.catalog);
        } else {
            match cache.put(&key, outputs, &source, nc.overwrite).await {
                Ok(r) => {
                    nc.status = CatalogCacheStatus::CachePopulated;
                    nc.catalog = Some(r.catalog);
                }
                Err(_) => nc.status = CatalogCacheStatus::CachePutFailure,
            }
        }
        if let Some((key, owner)) = take_reservation(nc) {
            let _ = cache.release_reservation(&key, &owner).await;
        }
    }

    /// Called when a task node ends without success: releases its reservation (in the
    /// background), stops a waiter. Nothing is stored.
    pub(super) fn cache_node_ended(&mut self, idx: usize) {
        let Some(nc) = self.nodes[idx].state.cache_mut() else {
            return;
        };
        nc.stop.store(true, Ordering::SeqCst);
        let release = take_reservation(nc);
        if let (Some(cache), Some((key, owner))) = (self.task_cache(), release) {
            tokio::spawn(async move {
                let _ = cache.release_reservation(&key, &owner).await;
            });
        }
    }

    /// The cache part of a task node event's metadata.
    pub(super) fn cache_metadata(&self, idx: usize) -> TaskNodeMetadata {
        match self.nodes[idx].state.cache() {
            Some(nc) => TaskNodeMetadata {
                cache_status: nc.status as i32,
                catalog_key: nc.catalog.clone(),
                reservation_status: nc.reservation as i32,
                ..Default::default()
            },
            None => TaskNodeMetadata::default(),
        }
    }

    /// A map task index's cache status.
    pub(super) fn cache_status_of(&self, idx: usize) -> CatalogCacheStatus {
        self.nodes[idx]
            .state
            .cache()
            .map(|nc| nc.status)
            .unwrap_or(CatalogCacheStatus::CacheDisabled)
    }
}

/// Marks a held reservation released; what to release, if one was held or asked for.
fn take_reservation(nc: &mut NodeCache) -> Option<(CacheKey, String)> {
    if !nc.serialized() || nc.reservation == ReservationStatus::ReservationReleased {
        return None;
    }
    nc.stop.store(true, Ordering::SeqCst);
    nc.reservation = ReservationStatus::ReservationReleased;
    Some((nc.key.clone()?, nc.owner.clone()))
}

/// Extends a held reservation every heartbeat until stopped or the execution's actor is gone
/// (then it expires).
async fn keep_reservation(
    cache: Arc<dyn TaskCache>,
    key: CacheKey,
    owner: String,
    stop: Arc<AtomicBool>,
    updates: Updates,
) {
    loop {
        tokio::time::sleep(HEARTBEAT).await;
        if stop.load(Ordering::SeqCst) || updates.is_closed() {
            return;
        }
        if let Err(e) = cache
            .get_or_extend_reservation(&key, &owner, HEARTBEAT)
            .await
        {
            tracing::warn!(key = %key, error = %e, "cannot extend the cache reservation");
        }
    }
}

struct Waiter {
    cache: Arc<dyn TaskCache>,
    key: CacheKey,
    owner: String,
    attempt: TaskAttempt,
    backend: Arc<dyn TaskBackend>,
    updates: Updates,
    blob: BlobStore,
    out_file: String,
    hit: Arc<Mutex<Option<CacheHit>>>,
    stop: Arc<AtomicBool>,
    clock: Arc<dyn crate::clock::Clock>,
}

/// Waits until the reservation is ours (its holder released it or died), then looks up
/// again: cached → the outputs are written and the attempt reports success (the actor sees
/// the hit); not cached → the attempt starts, and the reservation is kept while it runs.
async fn wait_for_reservation(w: Waiter) {
    loop {
        tokio::time::sleep(POLL).await;
        if w.stop.load(Ordering::SeqCst) || w.updates.is_closed() {
            return;
        }
        match w
            .cache
            .get_or_extend_reservation(&w.key, &w.owner, HEARTBEAT)
            .await
        {
            Ok(r) if r.is_held_by(&w.owner) => break,
            Ok(_) => continue,
            Err(e) => {
                tracing::warn!(key = %w.key, error = %e, "cache reservation failed; retrying");
                continue;
            }
        }
    }
    if let Ok(Some(hit)) = w.cache.lookup(&w.key).await
        && w.blob
            .put(&w.out_file, Bytes::from(hit.outputs.encode_to_vec()))
            .await
            .is_ok()
    {
        *w.hit.lock().unwrap() = Some(hit);
        let _ = w.updates.send((
            w.attempt.key.clone(),
            AttemptUpdate::Finished(AttemptOutcome::Succeeded { logs: Vec::new() }),
        ));
        return;
    }
    let key = w.attempt.key.clone();
    if let Err(e) = w.backend.start(w.attempt, w.updates.clone()).await {
        let (error, retryable) = match e {
            BackendError::Unsupported(msg) => (
                error_at(
                    w.clock.now_us(),
                    ErrorKind::User,
                    "TaskBackendUnsupported",
                    msg,
                ),
                false,
            ),
            BackendError::Internal(msg) => (
                error_at(w.clock.now_us(), ErrorKind::System, "TaskBackendError", msg),
                true,
            ),
        };
        let _ = w.updates.send((
            key,
            AttemptUpdate::Finished(AttemptOutcome::Failed {
                error,
                retryable,
                logs: Vec::new(),
            }),
        ));
    }
    keep_reservation(w.cache, w.key, w.owner, w.stop, w.updates).await;
}
