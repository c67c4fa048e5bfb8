//! Scaling a group to an exact size, or by a step: the group is read once,
//! under its lock, and that snapshot is handed down: woken if asleep,
//! admission then growth to grow, shrinking (marked now, drained and
//! stopped after the lock is let go) to shrink, sleep to go to zero; a Swarm
//! group's service is scaled instead.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::admission::Admission;
use super::core::{detached, Core};
use super::growth::Growth;
use super::ready::Readiness;
use super::replica::Replica;
use super::shrinking::{Shrink, Shrinking};
use super::sleep::Sleeper;
use super::source::Source;
use super::swarm::Services;
use crate::error::{Error, Result};
use crate::inventory::Group;
use crate::rules::bounds::{Bounds, GroupKind};

/// Brings group `name` to `replicas` members, original included, in its
/// own task. With `ready_within`, a scale-up answers once the new members
/// are ready, or removes them all when one is not in time.
pub(super) async fn scale(
    core: &Arc<Core>,
    name: &str,
    replicas: u32,
    caller: &str,
    ready_within: Option<Duration>,
) -> Result<Group> {
    let (core, name, caller) = (core.clone(), name.to_owned(), caller.to_owned());
    detached(async move {
        let _acting = core.acting.permit().await?;
        Scale(&core).to(&name, replicas, &caller, ready_within).await
    })
    .await
}

/// Moves group `name` by `step` members (down when negative), within its
/// bounds; the size it moves from is read under the group's lock, so two
/// moves at once both count. Returns the sizes before and after.
pub(super) async fn scale_by(core: &Arc<Core>, name: &str, step: i64, caller: &str) -> Result<(u32, u32)> {
    let (core, name, caller) = (core.clone(), name.to_owned(), caller.to_owned());
    detached(async move {
        let _acting = core.acting.permit().await?;
        Scale(&core).by(&name, step, &caller).await
    })
    .await
}

/// Wakes a sleeping group (see [`super::sleep::wake`]); one that declares
/// `replicator.wake.replicas=N` then grows to N in the background, so the
/// first member ready answers what was held.
pub(super) async fn wake(core: &Arc<Core>, name: &str, caller: &str, ready_within: Option<Duration>) -> Result<Group> {
    // Another replicator acts: it wakes the group (a waiting page shown by this one).
    if let Some(asked) = core.acting.wake_through_leader(name).await {
        asked?;
        return core.group(name).await;
    }
    let (group, woke) = super::sleep::wake(core, name, caller, ready_within).await?;
    if let Some(to) = group.wake_to.filter(|to| woke && *to as usize > group.size()) {
        let (core, name, caller) = (core.clone(), name.to_owned(), caller.to_owned());
        tokio::spawn(async move {
            info!(group = %name, to, "woken: growing to replicator.wake.replicas");
            if let Err(e) = scale(&core, &name, to, &caller, None).await {
                warn!(group = %name, to, error = %e, "cannot grow the woken group");
            }
        });
    }
    Ok(group)
}

/// One scale command.
struct Scale<'a>(&'a Core);

impl Scale<'_> {
    async fn to(&self, name: &str, target: u32, caller: &str, ready_within: Option<Duration>) -> Result<Group> {
        let change = {
            // Held for the change itself: two scale requests never interleave;
            // waiting for balancers and readiness happens after, without
            // holding the group, so a scale-up never waits on a drain.
            let _locked = self.0.locks.lock(name).await;
            let group = self.0.group(name).await?;
            check_target(&group, target)?;
            self.change(&group, target, caller).await?
        };
        let created = self.complete(change).await?;
        if let (Some(within), false) = (ready_within, created.is_empty()) {
            Readiness(self.0).all_or_none(&created, within).await?;
        }
        // The answer: the group as it is now.
        self.0.group(name).await
    }

    async fn by(&self, name: &str, step: i64, caller: &str) -> Result<(u32, u32)> {
        let (size, to, change) = {
            let _locked = self.0.locks.lock(name).await;
            let group = self.0.group(name).await?;
            let bounds = group.bounds.clone().map_err(|reason| Error::InvalidGroup { group: name.into(), reason })?;
            let size = group.size() as i64;
            let to = (size + step).clamp(i64::from(bounds.min), i64::from(bounds.max.max(bounds.min))) as u32;
            let change = match i64::from(to) != size {
                true => self.change(&group, to, caller).await?,
                false => Change::None,
            };
            (size as u32, to, change)
        };
        self.complete(change).await?;
        Ok((size, to))
    }

    /// What changes under the group's lock, on the caller's snapshot.
    async fn change(&self, group: &Group, target: u32, caller: &str) -> Result<Change> {
        if group.kind() == GroupKind::Swarm {
            Services(self.0).scale(group, target, caller).await?;
            return Ok(Change::None);
        }
        let (target, size) = (target as usize, group.size());
        match target {
            0 => Sleeper(self.0).put_to_sleep(group, caller).await.map(|()| Change::None),
            _ if target > size => self.grow(group, target, caller).await,
            _ if target == size => Ok(Change::None),
            _ => Shrinking(self.0).mark(group, target, caller).map(Change::Shrinking),
        }
    }

    /// Wakes the group if it sleeps, then admits and grows what is still missing.
    async fn grow(&self, group: &Group, target: usize, caller: &str) -> Result<Change> {
        let core = self.0;
        let (name, group) = (group.name(), &Sleeper(core).wake_originals(group).await?);
        let size = group.size();
        if size >= target {
            info!(group = name, to = target, caller, "group woken");
            return Ok(Change::None);
        }
        let source =
            group.clone_source().ok_or_else(|| Error::Conflict(format!("group {name} has no live member to clone")))?;
        let details = core.engine.inspect_container(&source.id).await?;
        let source = Source::of(details, Some(group), core.store.scope().default_max)?;
        let admitted = Admission(core).admit(&source, Some(group), target - size).await?;
        // Only replicas made cold count as replications; standbys were made before.
        let cold = admitted.cold() > 0;
        let started = Instant::now();
        let result = Growth(core).grow(&source, admitted, caller).await;
        if cold {
            let outcome = if result.is_ok() { "created" } else { "failed" };
            core.telemetry.replication(name, outcome, started.elapsed().as_secs_f64());
        }
        info!(group = name, from = size, to = target, caller, "group scaled");
        Ok(Change::Grown(result?.replicas))
    }

    /// The part of a change that waits, done without the group's lock.
    /// Returns the replicas a growth created.
    async fn complete(&self, change: Change) -> Result<Vec<Replica>> {
        match change {
            Change::None => Ok(Vec::new()),
            Change::Grown(created) => Ok(created),
            Change::Shrinking(shrink) => Shrinking(self.0).finish(shrink).await.map(|()| Vec::new()),
        }
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
