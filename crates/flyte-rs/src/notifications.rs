//! Starts the notifier (crates/flyte-notify) over the metadata store's outbox.

use std::sync::Arc;

use flyte_engine::clock::SystemClock;
use tokio::sync::watch;

use crate::config::Config;

/// Spawns the notifier over the outbox, stopped when `stop` turns true. Every replica may
/// run it: claims are leased, so each notification is sent by one.
pub fn start(
    config: &Config,
    store: &Arc<dyn flyte_store::MetadataStore>,
    public_url: &str,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let owner = config.replica.id.clone().unwrap_or_else(|| {
        format!(
            "notifier-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        )
    });
    let notifier = flyte_notify::Notifier::new(
        store.clone(),
        Arc::new(SystemClock),
        config.notifications.notifier_config(public_url, owner),
    )
    .map_err(anyhow::Error::msg)?;
    Ok(tokio::spawn(notifier.run(stop)))
}
