//! Scale to zero: a plain or compose group whose `replicator.min` is 0 may
//! sleep. Going to zero drains every member, removes the replicas and
//! pauses the originals (`replicator.sleep=pause`, the default: they keep
//! their memory and wake in milliseconds) or stops them
//! (`replicator.sleep=stop`: memory freed, a cold start on waking). An
//! original is never removed. The next scale-up, a wake request, or the
//! autoscaler seeing the metric above its activation wakes the originals
//! first.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use tracing::info;

use super::capacity::{How, Phase};
use super::core::{detached, Core};
use super::ready::Readiness;
use super::shrinking::Shrinking;
use crate::error::{Error, Result};
use crate::inventory::{Group, Member, MemberState};
use crate::model::RunState;
use crate::rules::labels;

/// How an original sleeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sleep {
    Pause,
    Stop,
}

/// Puts groups to sleep and wakes them.
pub(super) struct Sleeper<'a>(pub &'a Core);

impl Sleeper<'_> {
    /// Brings the group to zero. The caller holds the group's lock.
    pub async fn put_to_sleep(&self, group: &Group, caller: &str) -> Result<()> {
        let name = group.name();
        if group.members.iter().any(|m| m.state.in_flight()) {
            return Err(Error::Conflict(format!("group {name} has replicas being made: it cannot go to sleep now")));
        }
        let going: Vec<&Member> = group.members.iter().filter(|m| m.state.holds_place()).collect();
        let ids: Vec<String> = going.iter().map(|m| m.id.clone()).collect();
        let leaving = self.0.intents.mark_leaving(&ids, MemberState::Draining);
        if !self.0.drain(name, &ids).await {
            info!(
                group = name,
                "drain timeout: not every balancer confirmed or connection closed; going to sleep anyway"
            );
        }
        leaving.stopping();
        // Replicas first: an original sleeps only once none is left, so a
        // failure never leaves a paused original counted beside live replicas.
        let (originals, replicas): (Vec<&Member>, Vec<&Member>) = going.into_iter().partition(|m| m.original);
        let shrinking = Shrinking(self.0);
        let retired = join_all(replicas.iter().map(|m| shrinking.retire(&m.id))).await;
        retired.into_iter().collect::<Result<Vec<()>>>()?;
        let slept = join_all(originals.iter().map(|m| self.sleep_original(m))).await;
        drop(leaving);
        slept.into_iter().collect::<Result<Vec<()>>>()?;
        info!(group = name, caller, "group asleep");
        Ok(())
    }

    async fn sleep_original(&self, m: &Member) -> Result<()> {
        match self.sleep_of(&m.id)? {
            Sleep::Pause => {
                self.0.pause(&m.id).await?;
                self.0.set_state(&m.id, RunState::Paused);
            }
            Sleep::Stop => {
                self.0.engine.stop_container(&m.id, self.0.settings.stop_seconds()).await?;
                self.0.set_state(&m.id, RunState::Exited);
            }
        }
        Ok(())
    }

    fn sleep_of(&self, id: &str) -> Result<Sleep> {
        let labels = self.0.store.container(id).map(|c| c.labels).unwrap_or_default();
        match labels.get(labels::SLEEP).map(|v| v.trim()) {
            None | Some("pause") => Ok(Sleep::Pause),
            Some("stop") => Ok(Sleep::Stop),
            Some(other) => Err(Error::Conflict(format!(
                "label {}={:?} is neither pause nor stop",
                labels::SLEEP,
                crate::base::quote::clip(other)
            ))),
        }
    }

    /// Wakes a sleeping group's originals (unpaused or started); returns the
    /// snapshot with them running (not read again: the caller goes on from
    /// it under the lock it holds). A group that is not asleep is returned
    /// as it is.
    pub async fn wake_originals(&self, group: &Group) -> Result<Group> {
        if !group.asleep() {
            return Ok(group.clone());
        }
        let sleeping: Vec<&Member> = group.members.iter().filter(|m| m.state == MemberState::Sleeping).collect();
        for m in &sleeping {
            let paused = self.0.store.container(&m.id).is_some_and(|c| c.state == RunState::Paused);
            let how = if paused { How::WakeFromPause } else { How::WakeFromStop };
            self.0.capacity.began(group.name(), &m.id, &m.name, how);
            let began = tokio::time::Instant::now();
            if paused {
                self.0.engine.unpause_container(&m.id).await?;
            } else {
                self.0.engine.start_container(&m.id).await?;
            }
            self.0.capacity.phase(&m.id, Phase::Start, began.elapsed());
            // A started container may have new addresses: read it again. An
            // unpaused one kept its own, and one engine call less is a faster wake.
            let inspected = if paused { None } else { self.0.engine.inspect_container(&m.id).await.ok() };
            match inspected {
                Some(details) => self.0.intents.inspected(details.summary()),
                None => self.0.set_state(&m.id, RunState::Running),
            }
            self.0.capacity.watch_until_ready(&m.id);
        }
        // Woken is as good as a request: the quiet period starts now.
        self.0.activity.touch(group.name());
        info!(group = %group.name(), originals = sleeping.len(), "group woken");
        let mut woken = group.clone();
        for m in woken.members.iter_mut().filter(|m| m.state == MemberState::Sleeping) {
            m.state = MemberState::Running;
        }
        Ok(woken)
    }

    /// Wakes a sleeping group to one member (its originals), waiting until
    /// they are ready when asked; a group awake already is left as it is.
    /// `true` with the group when this call woke it.
    async fn wake(&self, name: &str, caller: &str, ready_within: Option<Duration>) -> Result<(Group, bool)> {
        let group = self.0.group(name).await?;
        if !group.asleep() {
            // Answered without the lock: a wake never waits on a scale-up.
            return Ok((group, false));
        }
        let woken = {
            let _locked = self.0.locks.lock(name).await;
            let group = self.0.group(name).await?;
            if !group.asleep() {
                return Ok((group, false));
            }
            self.wake_originals(&group).await?
        };
        info!(group = name, caller, "wake requested");
        if let Some(within) = ready_within {
            let ids: Vec<String> = woken.members.iter().filter(|m| m.original).map(|m| m.id.clone()).collect();
            Readiness(self.0).wait(&ids, within).await?;
        }
        Ok((self.0.group(name).await?, true))
    }
}

/// [`Sleeper::wake`] in its own task: half a wake would leave originals
/// paused if the caller went away. `true` with the group when it woke it.
pub(super) async fn wake(
    core: &Arc<Core>,
    name: &str,
    caller: &str,
    ready_within: Option<Duration>,
) -> Result<(Group, bool)> {
    let (core, name, caller) = (core.clone(), name.to_owned(), caller.to_owned());
    detached(async move {
        let _acting = core.acting.permit().await?;
        Sleeper(&core).wake(&name, &caller, ready_within).await
    })
    .await
}
