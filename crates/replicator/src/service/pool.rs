//! Warm standbys (`replicator.warm=N`): clones created, started, let get
//! ready, then paused. Unpausing one takes the engine milliseconds, whatever
//! the app's start-up time, so every scale-up takes standbys first and makes
//! only the rest cold; a scale-down pauses surplus members back into the
//! pool while it is short. The keeper (`keeper.rs`) refills each pool.
//!
//! A standby is a paused replica of a group that asks for standbys, or a
//! paused replica labelled `replicator.standby=true` (made for a pool); one
//! replicator is still warming is one too. After a crash, a paused standby
//! is adopted as it is, and one caught warming (running) is adopted as a
//! member: nothing is left that the next start neither uses nor removes.

use futures_util::future::join_all;
use tracing::{info, warn};

use super::capacity::{How, Phase};
use super::core::Core;
use super::replica::Replica;
use super::source::Source;
use crate::error::{Error, Result};
use crate::inventory::{Group, Member, MemberState};
use crate::model::RunState;
use crate::rules::labels;

/// The standbys of the groups: taken, given back, paused into.
pub(super) struct Pool<'a>(pub &'a Core);

impl Pool<'_> {
    /// Unpauses up to `count` ready standbys of `group` (the snapshot the
    /// caller read under the group's lock; `None` for a group not known
    /// yet), after checking that `count` new members fit under the source's
    /// `max`. They are members as soon as this returns.
    pub async fn promote(&self, source: &Source, group: Option<&Group>, count: usize) -> Result<Vec<Replica>> {
        let Some(group) = group else { return Ok(Vec::new()) };
        let max = source.bounds.max;
        if group.size() + count > max as usize {
            return Err(Error::LimitReached { group: group.name().to_owned(), max });
        }
        let chosen: Vec<&Member> = self.fresh(group, source).into_iter().take(count).collect();
        let results = join_all(chosen.iter().map(|m| self.unpause(group.name(), m))).await;
        let promoted: Vec<Replica> = results.into_iter().flatten().collect();
        if !promoted.is_empty() {
            info!(group = %group.name(), count = promoted.len(), "standbys unpaused into members");
        }
        Ok(promoted)
    }

    /// Puts promoted standbys back into the pool after the rest of their request failed.
    pub async fn demote(&self, replicas: &[Replica]) {
        for r in replicas {
            if let Err(e) = self.pause(&r.id).await {
                warn!(container = %r.id, error = %e, "could not pause a standby back; removing it");
                self.0.remove_quietly(&r.id).await;
            }
        }
    }

    async fn unpause(&self, group: &str, m: &Member) -> Option<Replica> {
        let core = self.0;
        core.capacity.began(group, &m.id, &m.name, How::Standby);
        let began = tokio::time::Instant::now();
        match core.engine.unpause_container(&m.id).await {
            Ok(()) => {
                core.set_state(&m.id, RunState::Running);
                core.capacity.phase(&m.id, Phase::Start, began.elapsed());
                core.capacity.watch_until_ready(&m.id);
                Some(Replica { id: m.id.clone(), name: m.name.clone() })
            }
            Err(e) => {
                warn!(container = %m.id, error = %e, "cannot unpause a standby; it will be recycled");
                None
            }
        }
    }

    /// Pauses a member (already drained) so that it becomes a standby.
    pub async fn pause(&self, id: &str) -> Result<()> {
        self.0.pause(id).await?;
        self.0.set_state(id, RunState::Paused);
        Ok(())
    }

    /// Standbys still ready to serve: paused, and what a clone made now
    /// would be: cloned from the group's current original, running its
    /// image. A clone runs the bits its original runs (not whatever its tag
    /// names later), so a redeploy (the original recreated from a moved
    /// tag) is what makes standbys stale.
    pub fn fresh<'g>(&self, group: &'g Group, source: &Source) -> Vec<&'g Member> {
        group.standbys.iter().filter(|m| m.state == MemberState::Paused && self.matches(m, source)).collect()
    }

    fn matches(&self, standby: &Member, source: &Source) -> bool {
        let Some(c) = self.0.store.container(&standby.id) else { return false };
        let from = c.labels.get(labels::SOURCE).map(String::as_str);
        // An image not known yet (a record made before the engine's) is no reason to recycle.
        let same_image = c.image_id.is_empty() || c.image_id == source.details.image_id;
        same_image && from == Some(source.group.original_id.as_str())
    }
}
