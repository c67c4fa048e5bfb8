//! Removing the debris of replications that were cut off (replicator killed
//! between create and start): found in the inventory, confirmed by an
//! inspect, removed.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use super::Replicator;
use crate::error::Result;
use crate::model::RunState;

/// How often the reconcile pass runs once it has succeeded.
const RECONCILE_EVERY: Duration = Duration::from_secs(300);
/// How long to wait before retrying when the engine is away.
const RETRY: Duration = Duration::from_secs(2);

impl Replicator {
    /// Undoes replication requests that were cut off: every replica of a
    /// request one of whose replicas was created but never started. Only
    /// containers carrying replicator's own labels are considered, and never
    /// a request this process is working on now.
    pub async fn reconcile(&self) -> Result<usize> {
        // Fails while the engine has not been listed: nothing to judge by yet.
        self.inventory().groups()?;
        let abandoned = self.inventory().abandoned_replicas();
        let mut confirmed = std::collections::HashSet::new();
        for c in abandoned.iter().filter(|c| c.state == RunState::Created) {
            // The inventory may be stale: a request goes only if a replica is still never started.
            match self.engine().inspect_container(&c.id).await {
                Ok(d) if d.state == RunState::Created && d.never_started => {
                    confirmed.insert(request_of(c));
                }
                Ok(_) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
        }
        let mut removed = 0;
        for c in abandoned.iter().filter(|c| confirmed.contains(&request_of(c))) {
            match self.engine().remove_container(&c.id).await {
                Ok(()) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
            self.intents().removed(&c.id);
            info!(container = %c.id, name = %c.name, request = %request_of(c), "removed a replica of a request that never finished");
            removed += 1;
        }
        Ok(removed)
    }

    /// Runs the reconcile pass now (as soon as the engine answers) and then periodically, until `cancel`.
    pub async fn keep_reconciling(self, cancel: CancellationToken) {
        loop {
            let wait = match self.reconcile().await {
                Ok(_) => RECONCILE_EVERY,
                Err(e) => {
                    debug!(error = %e, "reconcile pass failed; retrying");
                    RETRY
                }
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = cancel.cancelled() => return,
            }
        }
    }
}

/// The request a replica belongs to (itself, for replicas made before requests were labelled).
fn request_of(c: &crate::model::ContainerSummary) -> String {
    c.labels.get(crate::rules::labels::REQUEST).cloned().unwrap_or_else(|| c.id.clone())
}
