//! Shrinking a group: the members to remove chosen (fewest open connections
//! first, never an original) and marked leaving under the group's lock, so
//! they stop counting and leave the balancers at once; then, without the
//! lock, drained and stopped gracefully, or paused into a short warm pool.

use futures_util::future::join_all;
use tracing::{info, warn};

use super::core::Core;
use super::pool::Pool;
use crate::error::{Error, Result};
use crate::inventory::{Group, Leaving, MemberState};

/// Members on their way out of a group.
pub(super) struct Shrink {
    group: String,
    victims: Vec<String>,
    /// How many of the victims (the first) are paused into the warm pool.
    pooled: usize,
    /// Their marks; dropped once they are gone (or failed to go).
    leaving: Leaving,
}

/// Takes members out of groups.
pub(super) struct Shrinking<'a>(pub &'a Core);

impl Shrinking<'_> {
    /// Chooses and marks the members that take `group` (the caller's
    /// snapshot, under the lock it holds) down to `target`.
    pub fn mark(&self, group: &Group, target: usize, caller: &str) -> Result<Shrink> {
        let (name, size) = (group.name(), group.size());
        // Fewest open connections first; among equals, the newest (the order newest_replicas gives).
        let mut candidates = group.newest_replicas(usize::MAX);
        candidates.sort_by_key(|m| self.0.connections.open_to(&m.id));
        let victims: Vec<String> = candidates.iter().take(size - target).map(|m| m.id.clone()).collect();
        if victims.len() < size - target {
            return Err(Error::Conflict(format!(
                "group {name} cannot go below {} members: only replicas created by replicator are removed",
                size - victims.len()
            )));
        }
        let leaving = self.0.intents.mark_leaving(&victims, MemberState::Draining);
        // While the warm pool is short, surplus members are paused into it.
        let pooled = (group.warm as usize).saturating_sub(group.standbys.len()).min(victims.len());
        info!(group = name, from = size, to = target, caller, "group scaling down");
        Ok(Shrink { group: name.to_owned(), victims, pooled, leaving })
    }

    /// The part that waits, done without the group's lock: waits for the
    /// balancers to let the members go (up to `--drain-timeout`), then
    /// pauses or removes them.
    pub async fn finish(&self, shrink: Shrink) -> Result<()> {
        let Shrink { group, victims, pooled, leaving } = shrink;
        // Out of every balancer first: no request reaches a member being stopped.
        if !self.0.drain(&group, &victims).await {
            info!(group, "drain timeout: not every balancer confirmed or connection closed; stopping anyway");
        }
        let (pooled, retired) = victims.split_at(pooled);
        leaving.stopping();
        let pool = Pool(self.0);
        let paused = join_all(pooled.iter().map(|id| pool.pause(id))).await;
        let mut outcomes = join_all(retired.iter().map(|id| self.retire(id))).await;
        for (id, paused) in pooled.iter().zip(paused) {
            if let Err(e) = paused {
                warn!(container = %id, error = %e, "cannot pause into the warm pool; removing");
                outcomes.push(self.retire(id).await);
            }
        }
        outcomes.into_iter().collect::<Result<Vec<()>>>()?;
        info!(group, removed = victims.len(), "group scaled down");
        Ok(())
    }

    /// Stops with the container's own stop signal, then removes it. A
    /// replica that is already gone is what was wanted, not an error.
    pub async fn retire(&self, id: &str) -> Result<()> {
        let engine = &self.0.engine;
        match engine.stop_container(id, self.0.settings.stop_seconds()).await {
            Err(e) if !e.is_not_found() => warn!(container = id, error = %e, "stop failed; removing anyway"),
            _ => {}
        }
        match engine.remove_container(id).await {
            Ok(()) => info!(container = id, "replica removed"),
            Err(e) if e.is_not_found() => info!(container = id, "replica already gone"),
            Err(e) => return Err(e.into()),
        }
        self.0.intents.removed(id);
        Ok(())
    }
}
