//! Scaling a group to an exact size: clones of the original to grow, the
//! newest replicas (never an original) stopped gracefully and removed to shrink.

use futures_util::future::join_all;
use tracing::{info, warn};

use super::groups::{GroupView, Member};
use super::{detached, Replicator};
use crate::error::{Error, Result};
use crate::group::GroupKind;

impl Replicator {
    /// Brings group `name` to `replicas` members, original included.
    pub async fn scale(&self, name: &str, replicas: u32, caller: &str) -> Result<GroupView> {
        let (this, name, caller) = (self.clone(), name.to_owned(), caller.to_owned());
        detached(async move { this.scale_now(&name, replicas, &caller).await }).await
    }

    async fn scale_now(&self, name: &str, target: u32, caller: &str) -> Result<GroupView> {
        let group = self.group(name).await?;
        if target < group.min || target > group.max {
            return Err(Error::Conflict(format!(
                "group {name} must have between {} and {} replicas (min and max); {target} asked",
                group.min, group.max
            )));
        }
        if group.kind == GroupKind::Swarm {
            self.scale_service(name, target, caller).await?;
        } else {
            self.scale_containers(name, target as usize, caller).await?;
        }
        self.group(name).await
    }

    async fn scale_containers(&self, name: &str, target: usize, caller: &str) -> Result<()> {
        let state = self
            .container_group_states()
            .await?
            .into_iter()
            .find(|g| g.identity.name == name)
            .ok_or_else(|| Error::GroupNotFound(name.to_owned()))?;
        let slot = self.inner.slots.slot(name);
        // Held for the whole change: two scale requests never interleave.
        let _admitted = slot.admit().await;
        let members = self.members(&state.identity).await?;
        let pending = slot.pending();
        let live: Vec<&Member> =
            members.iter().filter(|m| m.container.state.is_live() && !pending.contains(&m.container.name)).collect();
        let size = live.len() + pending.len();
        if target > size {
            let source_id = scale_source(&members).ok_or_else(|| Error::GroupNotFound(name.to_owned()))?;
            let details = self.engine().inspect_container(&source_id).await?;
            let source = self.source_from(details)?;
            let reservation = self.reserve(&slot, &source, (target - size) as u32).await?;
            let started = std::time::Instant::now();
            let created = self.create_replicas(&source, reservation, caller).await;
            let outcome = if created.is_ok() { "created" } else { "failed" };
            self.telemetry().replication(name, outcome, started.elapsed().as_secs_f64());
            created?;
        } else if target < size {
            let victims = newest_replicas(&live, size - target);
            if victims.len() < size - target {
                return Err(Error::Conflict(format!(
                    "group {name} cannot go below {} members: only replicas created by replicator are removed",
                    size - victims.len()
                )));
            }
            let outcomes = join_all(victims.iter().map(|m| self.retire(&m.container.id))).await;
            outcomes.into_iter().collect::<Result<Vec<()>>>()?;
        }
        info!(group = name, from = size, to = target, caller, "group scaled");
        Ok(())
    }

    /// Stops with the container's own stop signal, then removes it.
    async fn retire(&self, id: &str) -> Result<()> {
        let timeout = self.settings().stop_timeout.as_secs().min(i32::MAX as u64) as i32;
        if let Err(e) = self.engine().stop_container(id, timeout).await {
            warn!(container = id, error = %e, "stop failed; removing anyway");
        }
        self.engine().remove_container(id).await?;
        info!(container = id, "replica removed");
        Ok(())
    }
}

/// What to clone when growing: the original, else the newest member.
fn scale_source(members: &[Member]) -> Option<String> {
    let original = members.iter().find(|m| m.original && m.container.state.is_live());
    let newest = || members.iter().filter(|m| m.container.state.is_live()).max_by_key(|m| m.container.created);
    original.or_else(newest).or(members.first()).map(|m| m.container.id.clone())
}

/// Up to `n` replicas, newest first; originals are never chosen.
fn newest_replicas<'a>(live: &[&'a Member], n: usize) -> Vec<&'a Member> {
    let mut replicas: Vec<&Member> = live.iter().copied().filter(|m| !m.original).collect();
    // Creation time has one-second resolution; the replica number breaks ties.
    let number = |m: &Member| m.container.name.rsplit(['-', '_']).next().and_then(|n| n.parse::<u64>().ok());
    replicas.sort_by_key(|m| std::cmp::Reverse((m.container.created, number(m))));
    replicas.truncate(n);
    replicas
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ContainerSummary, RunState};

    fn member(name: &str, created: i64, original: bool, state: RunState) -> Member {
        Member {
            container: ContainerSummary { id: name.into(), name: name.into(), state, created, ..Default::default() },
            original,
        }
    }

    #[test]
    fn scale_down_takes_the_newest_replicas_and_never_the_original() {
        let all = [
            member("web", 300, true, RunState::Running),
            member("web-2", 100, false, RunState::Running),
            member("web-3", 200, false, RunState::Running),
            member("web-4", 200, false, RunState::Running),
        ];
        let live: Vec<&Member> = all.iter().collect();
        let names = |v: Vec<&Member>| v.iter().map(|m| m.container.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(newest_replicas(&live, 2)), ["web-4", "web-3"]);
        assert_eq!(names(newest_replicas(&live, 9)), ["web-4", "web-3", "web-2"]);
    }

    #[test]
    fn growth_clones_the_original_while_it_lives() {
        let all = [member("web", 1, true, RunState::Running), member("web-2", 5, false, RunState::Running)];
        assert_eq!(scale_source(&all).as_deref(), Some("web"));
        let gone = [member("web", 1, true, RunState::Exited), member("web-2", 5, false, RunState::Running)];
        assert_eq!(scale_source(&gone).as_deref(), Some("web-2"));
    }
}
