//! Removing debris: replications that were cut off (replicator killed
//! between create and start), and replicas that exited on their own and
//! have been kept [`EXITED_KEPT`] for their logs. Found in the inventory,
//! confirmed by an inspect, removed.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use super::core::Core;
use crate::error::Result;
use crate::model::RunState;

/// How often the reconcile pass runs once it has succeeded.
const RECONCILE_EVERY: Duration = Duration::from_secs(60);
/// How long a replica that exited on its own is kept (holding no place in
/// its group) so that its logs and exit code can be read.
pub const EXITED_KEPT: Duration = Duration::from_secs(300);
/// How long to wait before retrying when the engine is away.
const RETRY: Duration = Duration::from_secs(2);

/// Removes the debris.
pub(super) struct Reconciler<'a>(pub &'a Core);

impl Reconciler<'_> {
    /// Undoes replication requests that were cut off: every replica of a
    /// request one of whose replicas was created but never started. Only
    /// containers carrying replicator's own labels are considered, and never
    /// a request this process is working on now.
    pub async fn reconcile(&self) -> Result<usize> {
        // Fails while the engine has not been listed: nothing to judge by yet.
        self.0.store.groups()?;
        let abandoned = self.0.store.abandoned_replicas();
        let mut confirmed = std::collections::HashSet::new();
        for c in abandoned.iter().filter(|c| c.state == RunState::Created) {
            // The inventory may be stale: a request goes only if a replica is still never started.
            match self.0.engine.inspect_container(&c.id).await {
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
            match self.0.engine.remove_container(&c.id).await {
                Ok(()) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
            self.0.intents.removed(&c.id);
            info!(container = %c.id, name = %c.name, request = %request_of(c), "removed a replica of a request that never finished");
            removed += 1;
        }
        Ok(removed)
    }

    /// Removes replicas that exited on their own more than [`EXITED_KEPT`]
    /// ago. They hold no place from the moment they exit; an original is
    /// never removed.
    pub async fn remove_exited_replicas(&self) -> Result<usize> {
        let groups = self.0.store.groups()?;
        let exited = groups.iter().flat_map(|g| g.members.iter()).filter(|m| {
            !m.original && m.state == crate::inventory::MemberState::Exited && !m.id.is_empty() && is_local_member(m)
        });
        let kept_since = crate::base::clock::unix_now() - EXITED_KEPT.as_secs() as i64;
        let mut removed = 0;
        for m in exited {
            match self.0.engine.inspect_container(&m.id).await {
                Ok(d) if !d.state.is_live() && d.finished_at.is_some_and(|at| at <= kept_since) => {}
                Ok(_) => continue,
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e.into()),
            }
            match self.0.engine.remove_container(&m.id).await {
                Ok(()) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
            self.0.intents.removed(&m.id);
            info!(container = %m.id, name = %m.name, "removed a replica that exited on its own");
            removed += 1;
        }
        Ok(removed)
    }
}

/// Runs the reconcile pass now (as soon as the engine answers) and then periodically, until `cancel`.
pub(super) async fn keep_reconciling(core: Arc<Core>, cancel: CancellationToken) {
    let reconciler = Reconciler(&core);
    loop {
        let passes = async {
            Ok::<_, crate::error::Error>(reconciler.reconcile().await? + reconciler.remove_exited_replicas().await?)
        };
        let wait = match passes.await {
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

/// A container of this engine (a Swarm task's member is the orchestrator's to remove).
fn is_local_member(m: &crate::inventory::Member) -> bool {
    m.node.is_none()
}

/// The request a replica belongs to (itself, for replicas made before requests were labelled).
fn request_of(c: &crate::model::ContainerSummary) -> String {
    c.labels.get(crate::rules::labels::REQUEST).cloned().unwrap_or_else(|| c.id.clone())
}
