//! Live updates across replicas: each replica's committed changes are announced to the others
//! through the metadata store's notifications (PostgreSQL `NOTIFY` on [`CHANNEL`]), so a watch
//! served by one replica follows an execution another replica runs at once, not only at its
//! coarse re-read.
//!
//! What crosses is small on purpose: which executions changed and, when it moved, their phase
//! (a notification holds under 8,000 bytes). A watcher of a relayed change re-reads what it
//! shows (`resync`). Changes are gathered for [`FLUSH`] and sent together, so a busy replica
//! sends a few notifications a second, not one per event batch.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use flyte_store::{ExecutionKey, MetadataStore};
use tokio::sync::{broadcast, watch};

use super::{Change, LiveHub};

/// The channel every replica's relay listens on.
pub const CHANNEL: &str = "flyte_rs_live";
/// How long local changes are gathered before they are announced.
const FLUSH: Duration = Duration::from_millis(200);
/// Payload bytes per notification, under PostgreSQL's 8,000.
const MAX_PAYLOAD: usize = 7_000;

/// Relays this replica's changes to the others and theirs into `hub`, until `shutdown`.
/// Nothing to do on a store without notifications (SQLite: one process).
pub async fn run(
    hub: LiveHub,
    store: Arc<dyn MetadataStore>,
    origin: String,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut incoming = match store.listen(CHANNEL).await {
        Ok(Some(rx)) => rx,
        Ok(None) => return,
        Err(err) => {
            tracing::warn!(error = %err, "live updates of other replicas are off: cannot listen");
            return;
        }
    };
    let mut local = hub.subscribe();
    let mut pending: BTreeMap<ExecutionKey, Option<String>> = BTreeMap::new();
    let mut flush = tokio::time::interval(FLUSH);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            change = local.recv() => match change {
                Ok(change) if !change.remote => {
                    let phase = pending.entry(change.execution.clone()).or_default();
                    if change.phase.is_some() {
                        phase.clone_from(&change.phase);
                    }
                }
                Ok(_) => {}
                // Watchers elsewhere still re-read at their own pace.
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::debug!(missed, "live relay fell behind this replica's changes");
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            payload = incoming.recv() => match payload {
                Some(payload) => receive(&hub, &origin, &payload),
                None => return,
            },
            _ = flush.tick() => {
                if pending.is_empty() {
                    continue;
                }
                for payload in encode(&origin, &std::mem::take(&mut pending)) {
                    if let Err(err) = store.notify(CHANNEL, &payload).await {
                        tracing::debug!(error = %err, "cannot announce live changes to other replicas");
                    }
                }
            }
        }
    }
}

/// Publishes another replica's changes on `hub`; our own (and a lost connection's empty
/// payload) are dropped.
fn receive(hub: &LiveHub, origin: &str, payload: &str) {
    let Some((from, changes)) = decode(payload) else {
        return;
    };
    if from == origin {
        return;
    }
    for (execution, phase) in changes {
        hub.publish_change(Change {
            execution,
            phase,
            nodes: Vec::new(),
            tasks: Vec::new(),
            remote: true,
        });
    }
}

/// `origin` on the first line, then `project\tdomain\tname\tphase` a line (phase empty when
/// it did not move), split into payloads under [`MAX_PAYLOAD`].
fn encode(origin: &str, changes: &BTreeMap<ExecutionKey, Option<String>>) -> Vec<String> {
    let mut payloads = Vec::new();
    let mut current = origin.to_string();
    for (key, phase) in changes {
        let line = format!(
            "\n{}\t{}\t{}\t{}",
            key.project,
            key.domain,
            key.name,
            phase.as_deref().unwrap_or_default()
        );
        if current.len() + line.len() > MAX_PAYLOAD && current.len() > origin.len() {
            payloads.push(std::mem::replace(&mut current, origin.to_string()));
        }
        current.push_str(&line);
    }
    if current.len() > origin.len() {
        payloads.push(current);
    }
    payloads
}

type Decoded<'a> = (&'a str, Vec<(ExecutionKey, Option<String>)>);

fn decode(payload: &str) -> Option<Decoded<'_>> {
    let mut lines = payload.lines();
    let origin = lines.next().filter(|o| !o.is_empty())?;
    let changes = lines
        .filter_map(|line| {
            let mut fields = line.split('\t');
            let key = ExecutionKey {
                project: fields.next()?.to_string(),
                domain: fields.next()?.to_string(),
                name: fields.next()?.to_string(),
            };
            let phase = fields.next().filter(|p| !p.is_empty()).map(str::to_string);
            Some((key, phase))
        })
        .collect();
    Some((origin, changes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> ExecutionKey {
        ExecutionKey {
            project: "p".into(),
            domain: "development".into(),
            name: name.into(),
        }
    }

    #[test]
    fn changes_round_trip_and_split_under_the_payload_limit() {
        let mut changes = BTreeMap::new();
        for i in 0..1_000 {
            let phase = (i % 2 == 0).then(|| "SUCCEEDED".to_string());
            changes.insert(key(&format!("exec{i:04}")), phase);
        }
        let payloads = encode("replica-a", &changes);
        assert!(
            payloads.len() > 1,
            "1,000 changes need several notifications"
        );
        let mut back = BTreeMap::new();
        for payload in &payloads {
            assert!(payload.len() <= MAX_PAYLOAD, "{} bytes", payload.len());
            let (origin, decoded) = decode(payload).expect("a relay payload");
            assert_eq!(origin, "replica-a");
            back.extend(decoded);
        }
        assert_eq!(back, changes);
    }

    #[test]
    fn a_replica_ignores_its_own_changes_and_publishes_others() {
        let hub = LiveHub::new();
        let mut rx = hub.subscribe();
        let mut changes = BTreeMap::new();
        changes.insert(key("a"), Some("RUNNING".to_string()));
        let payload = encode("me", &changes).remove(0);
        receive(&hub, "me", &payload);
        assert!(rx.try_recv().is_err(), "our own change came back");
        receive(&hub, "other", &payload);
        let got = rx.try_recv().expect("the other replica's change");
        assert!(got.remote);
        assert_eq!(got.execution, key("a"));
        assert_eq!(got.phase.as_deref(), Some("RUNNING"));
        // A lost connection's empty payload is no change.
        receive(&hub, "other", "");
        assert!(rx.try_recv().is_err());
    }
}
