//! The commands' side of the inventory: what replicator is doing that the
//! engine does not show yet. A replica being created holds its place and
//! name from the moment it is admitted ([`Reservation`]); a member being
//! removed stops counting at once ([`Leaving`]); a standby being warmed is
//! not a member. Both guards give back what they hold when dropped, so an
//! error or a panic half-way leaves no phantom behind. A command also
//! records what it just did to a container, without waiting for the event.

use std::sync::Arc;

use super::build::ProbeStatus;
use super::build::{Intent, SwarmService};
use super::group::{Group, MemberState};
use super::state::{merge, Shared};
use crate::model::{ContainerSummary, RunState};
use crate::rules::bounds::Naming;

/// What a reservation must stay within.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The group's maximum; `None` for standbys (on top of the members).
    pub group: Option<usize>,
    /// Every container replicator made, in its scope (`serve --max-containers`).
    pub total: usize,
}

/// Why a reservation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// The group would pass its maximum.
    Group,
    /// replicator would pass `--max-containers`; it has made `made`.
    Total {
        /// Containers replicator made (and replicas being made) now.
        made: usize,
    },
}

/// Records the commands' intents; clones share the inventory.
#[derive(Clone)]
pub struct Intents {
    shared: Arc<Shared>,
}

impl Intents {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// Reserves `count` places and names for the replicas of `request` in
    /// `group`, if the group's size (members holding a place, and replicas
    /// already being made) stays within `limits.group` (`None`: standbys,
    /// which come on top of the members) and every container replicator made
    /// within `limits.total`. Checked and reserved under one lock: exact
    /// under concurrency.
    pub fn reserve(
        &self,
        group: &str,
        request: &str,
        count: usize,
        limits: Limits,
        naming: &Naming,
    ) -> Result<Reservation, Full> {
        let max = limits.group;
        let mut state = self.shared.lock();
        let size = state.groups(&self.shared.scope).iter().find(|g| g.name() == group).map_or(0, Group::size);
        if max.is_some_and(|max| size + count > max) {
            return Err(Full::Group);
        }
        let made = state.made_by_replicator(&self.shared.scope);
        if made + count > limits.total {
            return Err(Full::Total { made });
        }
        let mut taken = state.names_in_use();
        let standby = max.is_none();
        let mut keys = Vec::new();
        for _ in 0..count {
            let name = naming.next_free(&taken);
            taken.insert(name.clone());
            let key = state.touch();
            let intent = Intent { group: group.to_owned(), name, id: None, request: request.to_owned(), standby };
            state.intents.insert(key, intent);
            keys.push(key);
        }
        let stamp = state.stamp();
        drop(state);
        self.shared.announce(stamp);
        Ok(Reservation { shared: self.shared.clone(), keys, request: request.to_owned(), count, standby })
    }

    /// Marks members as leaving (`Draining`, then `Stopping`): they stop
    /// counting, and leave the balancers, at once.
    pub fn mark_leaving(&self, ids: &[String], how: MemberState) -> Leaving {
        set_leaving(&self.shared, ids, how);
        Leaving { shared: self.shared.clone(), ids: ids.to_vec() }
    }

    /// Marks a standby as warming (started, to be paused once ready) or not.
    pub fn set_warming(&self, id: &str, warming: bool) {
        self.shared.write(|state, _| {
            if warming {
                state.warming.insert(id.to_owned());
            } else {
                state.warming.remove(id);
            }
        });
    }

    /// Records a container as replicator just made it. A fresher record of
    /// the same container from the informer is kept.
    pub fn observe(&self, container: ContainerSummary) {
        self.shared.write(|state, stamp| {
            let record = match state.containers.remove(&container.id) {
                Some(existing) => merge(&existing, container),
                None => container,
            };
            state.put(record, stamp);
        });
    }

    /// Records a container as an inspect replicator just made shows it: as
    /// fresh as anything the informer holds.
    pub fn inspected(&self, container: ContainerSummary) {
        self.shared.write(|state, stamp| state.put(container, stamp));
    }

    /// Records a state change the engine just accepted (a pause, an unpause).
    pub fn state_changed(&self, id: &str, to: RunState) {
        self.shared.write(|state, stamp| {
            if let Some(mut c) = state.containers.remove(id) {
                c.state = to;
                state.put(c, stamp);
            }
        });
    }

    /// Records that replicator removed a container.
    pub fn removed(&self, id: &str) {
        self.shared.write(|state, stamp| state.remove(id, stamp));
    }

    /// Records what replicator's own probe found of a running container.
    /// Readers are woken only when its readiness changes, not at every probe.
    pub fn probed(&self, id: &str, status: ProbeStatus) {
        let mut state = self.shared.lock();
        let running = state.containers.get(id).is_some_and(|c| c.state == RunState::Running);
        // A member not probed yet is starting by its probe already.
        let known = state.probes.get(id).map_or(crate::model::Health::Starting, |known| known.health);
        let same = known == status.health;
        match (running, same) {
            (false, _) => {}
            (true, true) => {
                state.probes.insert(id.to_owned(), status);
            }
            (true, false) => {
                state.probes.insert(id.to_owned(), status);
                let stamp = state.touch();
                drop(state);
                self.shared.announce(stamp);
            }
        }
    }

    /// Records a Swarm service as replicator just updated it.
    pub fn service_updated(&self, service: SwarmService) {
        self.shared.write(|state, _| {
            state.services.insert(service.details.id.clone(), service);
        });
    }
}

fn set_leaving(shared: &Shared, ids: &[String], how: MemberState) {
    shared.write(|state, _| state.leaving.extend(ids.iter().map(|id| (id.clone(), how))));
}

/// Places held in a group for replicas being created; given back on drop.
pub struct Reservation {
    shared: Arc<Shared>,
    keys: Vec<u64>,
    request: String,
    count: usize,
    standby: bool,
}

impl Reservation {
    /// Whether the places are for standbys of the warm pool.
    pub fn standby(&self) -> bool {
        self.standby
    }

    /// The request the replicas are made for, as their labels name it.
    pub fn request(&self) -> &str {
        &self.request
    }

    /// How many replicas the request makes.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The reserved names, in order.
    pub fn names(&self) -> Vec<String> {
        let state = self.shared.lock();
        self.keys.iter().filter_map(|k| state.intents.get(k)).map(|i| i.name.clone()).collect()
    }

    /// Records the id the engine gave the replica reserved as `index`.
    pub fn created(&self, index: usize, id: &str) {
        let key = self.keys.get(index);
        self.shared.write(|state, _| {
            if let Some(intent) = key.and_then(|k| state.intents.get_mut(k)) {
                intent.id = Some(id.to_owned());
            }
        });
    }

    /// Swaps the name reserved as `index` (taken meanwhile) for the next free one.
    pub fn rename(&self, index: usize, naming: &Naming) -> String {
        let key = self.keys.get(index);
        self.shared.write(|state, _| {
            let name = naming.next_free(&state.names_in_use());
            if let Some(intent) = key.and_then(|k| state.intents.get_mut(k)) {
                intent.name = name.clone();
            }
            name
        })
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.shared.write(|state, _| {
            for key in &self.keys {
                state.intents.remove(key);
            }
        });
    }
}

/// Members marked as leaving; unmarked on drop (by then they are gone, or
/// their removal failed and they count again).
pub struct Leaving {
    shared: Arc<Shared>,
    ids: Vec<String>,
}

impl Leaving {
    /// Moves the members on from draining to stopping.
    pub fn stopping(&self) {
        set_leaving(&self.shared, &self.ids, MemberState::Stopping);
    }
}

impl Drop for Leaving {
    fn drop(&mut self) {
        self.shared.write(|state, _| {
            for id in &self.ids {
                state.leaving.remove(id);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::{Health, Inventory, Scope};

    fn running(id: &str, labels: &[(&str, &str)]) -> ContainerSummary {
        ContainerSummary {
            id: id.into(),
            name: id.into(),
            state: RunState::Running,
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn a_probe_result_makes_the_member_ready_and_wakes_readers_only_when_readiness_changes() {
        let Inventory { writer, store, intents } = Inventory::new(Scope::default());
        writer.replace(
            writer.listing_started(),
            vec![running("web", &[("replicator.enable", "true"), ("replicator.ready", "tcp:80")])],
        );
        assert_eq!(store.member("web").unwrap().probe, Some(Health::Starting));
        let mut changes = store.subscribe();
        changes.borrow_and_update();
        let status = |health, why: Option<&str>| ProbeStatus { health, last_failure: why.map(str::to_owned) };
        intents.probed("web", status(Health::Starting, Some("refused")));
        assert!(!changes.has_changed().unwrap(), "still starting: nothing to tell");
        assert_eq!(store.probe_failure("web").as_deref(), Some("refused"), "but the reason is kept");
        intents.probed("web", status(Health::Healthy, None));
        assert!(changes.has_changed().unwrap());
        assert!(store.member("web").unwrap().ready());
        writer.record(ContainerSummary {
            state: RunState::Exited,
            ..running("web", &[("replicator.enable", "true"), ("replicator.ready", "tcp:80")])
        });
        assert_eq!(store.probe_failure("web"), None, "a stopped container starts its probes over");
        intents.probed("web", status(Health::Healthy, None));
        assert_ne!(
            store.member("web").unwrap().probe,
            Some(Health::Healthy),
            "a result for a container not running is dropped"
        );
    }
}
