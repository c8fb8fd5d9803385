//! Engine replicas on one PostgreSQL: the engine's leases and notifications
//! ([`flyte_engine::ownership`]) over the metadata store.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use flyte_engine::ExecKey;
use flyte_engine::ownership::{LeaseStore, Ownership, OwnershipConfig};
use flyte_store::{ExecutionKey, MetadataStore};
use tokio::sync::mpsc;

use crate::config::Config;

/// The channel every replica listens on.
const CHANNEL: &str = "flyte_rs_engine";

/// The engine's ownership for a PostgreSQL store; `None` for SQLite (one process owns all).
pub(crate) fn ownership(config: &Config, store: &Arc<dyn MetadataStore>) -> Option<Arc<Ownership>> {
    if store.backend_name() != "postgres" {
        return None;
    }
    let id = config.replica.id.clone().unwrap_or_else(default_id);
    let ttl = Duration::from_secs(config.replica.lease_secs);
    let own = OwnershipConfig {
        replica_id: id,
        lease_ttl: ttl,
        renew_interval: ttl / 3,
        takeover_interval: Duration::from_secs(1),
    };
    tracing::info!(replica = %own.replica_id, lease_secs = ttl.as_secs(), "engine replica: executions run under leases");
    Some(Ownership::new(
        own,
        Arc::new(StoreLeases {
            store: store.clone(),
        }),
    ))
}

/// Host name, pid and a random suffix: unique even for replicas on one host.
fn default_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "replica".into());
    format!(
        "{host}-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    )
}

struct StoreLeases {
    store: Arc<dyn MetadataStore>,
}

fn store_key(k: &ExecKey) -> ExecutionKey {
    ExecutionKey {
        project: k.project.clone(),
        domain: k.domain.clone(),
        name: k.name.clone(),
    }
}

fn exec_key(k: ExecutionKey) -> ExecKey {
    ExecKey {
        project: k.project,
        domain: k.domain,
        name: k.name,
    }
}

#[async_trait]
impl LeaseStore for StoreLeases {
    async fn claim(&self, key: &ExecKey, owner: &str, ttl: Duration) -> Result<bool, String> {
        self.store
            .claim_lease(&store_key(key), owner, ttl)
            .await
            .map_err(|e| e.to_string())
    }

    async fn renew(&self, owner: &str, ttl: Duration) -> Result<Vec<ExecKey>, String> {
        let keys = self
            .store
            .renew_leases(owner, ttl)
            .await
            .map_err(|e| e.to_string())?;
        Ok(keys.into_iter().map(exec_key).collect())
    }

    async fn release(&self, key: &ExecKey, owner: &str, finished: bool) -> Result<(), String> {
        self.store
            .release_lease(&store_key(key), owner, finished)
            .await
            .map_err(|e| e.to_string())
    }

    async fn release_all(&self, owner: &str) -> Result<(), String> {
        self.store
            .release_all_leases(owner)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    async fn take_expired(
        &self,
        owner: &str,
        ttl: Duration,
        limit: usize,
    ) -> Result<Vec<ExecKey>, String> {
        let keys = self
            .store
            .take_expired_leases(owner, ttl, limit)
            .await
            .map_err(|e| e.to_string())?;
        Ok(keys.into_iter().map(exec_key).collect())
    }

    async fn holder(&self, key: &ExecKey) -> Result<Option<String>, String> {
        self.store
            .lease_holder(&store_key(key))
            .await
            .map_err(|e| e.to_string())
    }

    async fn notify(&self, payload: &str) -> Result<(), String> {
        self.store
            .notify(CHANNEL, payload)
            .await
            .map_err(|e| e.to_string())
    }

    async fn listen(&self) -> Result<Option<mpsc::Receiver<String>>, String> {
        self.store.listen(CHANNEL).await.map_err(|e| e.to_string())
    }
}
