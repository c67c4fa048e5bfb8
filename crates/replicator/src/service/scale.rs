//! Scaling a group to an exact size: clones of the original to grow, the
//! newest replicas (never an original) stopped gracefully and removed to shrink.

use futures_util::future::join_all;
use tracing::{info, warn};

use super::{detached, Replica, Replicator};
use crate::error::{Error, Result};
use crate::inventory::{Group, MemberState};
use crate::rules::bounds::{Bounds, GroupKind};

impl Replicator {
    /// Brings group `name` to `replicas` members, original included.
    /// With `ready_within`, a scale-up answers once the new members are
    /// ready, or removes them all when one is not in time.
    pub async fn scale(
        &self,
        name: &str,
        replicas: u32,
        caller: &str,
        ready_within: Option<std::time::Duration>,
    ) -> Result<Group> {
        let (this, name, caller) = (self.clone(), name.to_owned(), caller.to_owned());
        detached(async move { this.scale_now(&name, replicas, &caller, ready_within).await }).await
    }

    /// Moves group `name` by `step` members (down when negative), within its
    /// bounds; the size it moves from is read under the group's lock, so two
    /// moves at once both count. Returns the sizes before and after.
    pub async fn scale_by(&self, name: &str, step: i64, caller: &str) -> Result<(u32, u32)> {
        let (this, name, caller) = (self.clone(), name.to_owned(), caller.to_owned());
        detached(async move {
            // A name no group bears takes no lock (Alertmanager may name anything).
            this.group(&name).await?;
            let _locked = this.inner.locks.lock(&name).await;
            let group = this.group(&name).await?;
            let bounds = group.bounds.clone().map_err(|reason| Error::InvalidGroup { group: name.clone(), reason })?;
            let size = group.size() as i64;
            let to = (size + step).clamp(i64::from(bounds.min), i64::from(bounds.max.max(bounds.min))) as u32;
            let change = match (i64::from(to) != size, group.kind()) {
                (false, _) => Change::None,
                (true, GroupKind::Swarm) => this.scale_service(&group, to, &caller).await.map(|()| Change::None)?,
                (true, _) => this.scale_containers(&group, to as usize, &caller).await?,
            };
            drop(_locked);
            this.complete(change).await?;
            Ok((size as u32, to))
        })
        .await
    }

    async fn scale_now(
        &self,
        name: &str,
        target: u32,
        caller: &str,
        ready_within: Option<std::time::Duration>,
    ) -> Result<Group> {
        let group = self.group(name).await?;
        check_target(&group, target)?;
        let change = {
            // Held for the change itself: two scale requests never interleave;
            // waiting for balancers and readiness happens after, without
            // holding the group, so a scale-up never waits on a drain.
            let _locked = self.inner.locks.lock(name).await;
            let group = self.group(name).await?;
            check_target(&group, target)?;
            match group.kind() {
                GroupKind::Swarm => self.scale_service(&group, target, caller).await.map(|()| Change::None)?,
                _ => self.scale_containers(&group, target as usize, caller).await?,
            }
        };
        let created = self.complete(change).await?;
        if let (Some(within), false) = (ready_within, created.is_empty()) {
            self.all_ready_or_none(&created, within).await?;
        }
        self.group(name).await
    }

    /// Creates members, or marks the ones to remove; the caller holds the
    /// group's lock, and completes the change once it has let go of it.
    async fn scale_containers(&self, group: &Group, target: usize, caller: &str) -> Result<Change> {
        let name = group.name();
        let size = group.size();
        if target == 0 {
            self.put_to_sleep(group, caller).await?;
            return Ok(Change::None);
        }
        if target > size {
            let group = &self.wake_originals(group).await?;
            let size = group.size();
            if size >= target {
                info!(group = name, to = target, caller, "group woken");
                return Ok(Change::None);
            }
            let source = group
                .clone_source()
                .ok_or_else(|| Error::Conflict(format!("group {name} has no live member to clone")))?;
            let details = self.engine().inspect_container(&source.id).await?;
            let source = self.source_from(details).await?;
            let admission = self.admit(&source, target - size).await?;
            // Only replicas made cold count as replications; standbys were made before.
            let cold = admission.cold() > 0;
            let started = std::time::Instant::now();
            let result = self.grow(&source, admission, caller).await;
            if cold {
                let outcome = if result.is_ok() { "created" } else { "failed" };
                self.telemetry().replication(name, outcome, started.elapsed().as_secs_f64());
            }
            info!(group = name, from = size, to = target, caller, "group scaled");
            return Ok(Change::Grown(result?.replicas));
        }
        if target == size {
            return Ok(Change::None);
        }
        // Fewest open connections first; among equals, the newest (the order newest_replicas gives).
        let mut candidates = group.newest_replicas(usize::MAX);
        candidates.sort_by_key(|m| self.connections().open_to(&m.id));
        let victims: Vec<String> = candidates.iter().take(size - target).map(|m| m.id.clone()).collect();
        if victims.len() < size - target {
            return Err(Error::Conflict(format!(
                "group {name} cannot go below {} members: only replicas created by replicator are removed",
                size - victims.len()
            )));
        }
        // They stop counting, and leave the balancers, at once.
        let leaving = self.intents().mark_leaving(&victims, MemberState::Draining);
        // While the warm pool is short, surplus members are paused into it.
        let pooled = (group.warm as usize).saturating_sub(group.standbys.len()).min(victims.len());
        info!(group = name, from = size, to = target, caller, "group scaling down");
        Ok(Change::Shrinking(Shrink { group: name.to_owned(), victims, pooled, leaving }))
    }

    /// The part of a change that waits, done without the group's lock: a
    /// shrink waits for the balancers to let its members go (up to
    /// `--drain-timeout`), then pauses or removes them. Returns the replicas
    /// a growth created.
    async fn complete(&self, change: Change) -> Result<Vec<Replica>> {
        let shrink = match change {
            Change::None => return Ok(Vec::new()),
            Change::Grown(created) => return Ok(created),
            Change::Shrinking(shrink) => shrink,
        };
        let Shrink { group, victims, pooled, leaving } = shrink;
        // Out of every balancer first: no request reaches a member being stopped.
        if !self.drain(&group, &victims).await {
            info!(group, "drain timeout: not every balancer confirmed or connection closed; stopping anyway");
        }
        let (pooled, retired) = victims.split_at(pooled);
        leaving.stopping();
        let paused = join_all(pooled.iter().map(|id| self.pause_into_pool(id))).await;
        let mut outcomes = join_all(retired.iter().map(|id| self.retire_replica(id))).await;
        for (id, paused) in pooled.iter().zip(paused) {
            if let Err(e) = paused {
                warn!(container = %id, error = %e, "cannot pause into the warm pool; removing");
                outcomes.push(self.retire_replica(id).await);
            }
        }
        outcomes.into_iter().collect::<Result<Vec<()>>>()?;
        info!(group, removed = victims.len(), "group scaled down");
        Ok(Vec::new())
    }

    /// Stops with the container's own stop signal, then removes it. A
    /// replica that is already gone is what was wanted, not an error.
    pub(super) async fn retire_replica(&self, id: &str) -> Result<()> {
        let timeout = self.settings().stop_timeout.as_secs().min(i32::MAX as u64) as i32;
        match self.engine().stop_container(id, timeout).await {
            Err(e) if !e.is_not_found() => warn!(container = id, error = %e, "stop failed; removing anyway"),
            _ => {}
        }
        match self.engine().remove_container(id).await {
            Ok(()) => info!(container = id, "replica removed"),
            Err(e) if e.is_not_found() => info!(container = id, "replica already gone"),
            Err(e) => return Err(e.into()),
        }
        self.intents().removed(id);
        Ok(())
    }
}

/// What a scale change did under the group's lock, and what is left to do.
enum Change {
    /// Nothing left (no change, a Swarm service updated, a group put to sleep or woken).
    None,
    /// Replicas created (and started).
    Grown(Vec<Replica>),
    /// Members marked leaving, to drain and remove.
    Shrinking(Shrink),
}

/// Members on their way out of a group.
struct Shrink {
    group: String,
    victims: Vec<String>,
    /// How many of the victims (the first) are paused into the warm pool.
    pooled: usize,
    /// Their marks; dropped once they are gone (or failed to go).
    leaving: crate::inventory::Leaving,
}

/// The group's bounds, if they allow `target`.
fn check_target(group: &Group, target: u32) -> Result<Bounds> {
    let bounds =
        group.bounds.clone().map_err(|reason| Error::InvalidGroup { group: group.name().to_owned(), reason })?;
    if target < bounds.min || target > bounds.max {
        return Err(Error::OutOfBounds {
            group: group.name().to_owned(),
            min: bounds.min,
            max: bounds.max,
            asked: target,
        });
    }
    Ok(bounds)
}
