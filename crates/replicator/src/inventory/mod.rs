//! The inventory: the one in-memory model of every container, managed group
//! and member, in the shape of a Kubernetes informer cache.
//!
//! Built from one listing, kept current from the engine's events, and
//! re-listed periodically and after a stream cut ([`informer`]): the engine
//! is the truth, the inventory a cache that repairs itself. Commands record
//! their intents here before the engine shows them (a replica being created,
//! a member being removed), so admission and limits are decided from memory,
//! without a listing on the hot path. Readers (API, dashboard, autoscaler,
//! `replicator upstreams`) take a consistent snapshot of [`Group`]s and
//! build their own views from it.

mod build;
mod group;
pub mod informer;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::watch;

pub use build::{may_be_member, Intent, Scope, SwarmService};
pub use group::{Group, Health, Member, MemberState, ServiceRef};
pub use informer::Informer;

use crate::engine::{EngineError, ErrorKind, Op};
use crate::error::{Error, Result};
use crate::model::{ContainerSummary, EngineInfo, NodeSummary, RunState};
use crate::rules::labels;

/// The shared model. Cheap to read; every write bumps a generation that
/// readers can wait on.
pub struct Inventory {
    scope: Scope,
    state: Mutex<State>,
    /// Bumped when anything a group is made of changes.
    changes: watch::Sender<u64>,
    /// Rung by a reader that found the inventory stale: the informer re-lists at once.
    resync_wanted: tokio::sync::Notify,
}

#[derive(Default)]
struct State {
    /// Every container on the engine, by id.
    containers: HashMap<String, ContainerSummary>,
    /// The stamp of the write that last set each container.
    stamps: HashMap<String, u64>,
    /// Containers removed, with the stamp of the removal (until the next listing).
    removed: HashMap<String, u64>,
    services: BTreeMap<String, SwarmService>,
    /// The swarm's nodes, on a manager.
    nodes: Vec<NodeSummary>,
    intents: BTreeMap<u64, Intent>,
    /// Members on their way out, and how far along.
    leaving: HashMap<String, MemberState>,
    /// Standbys being started, to be paused once ready.
    warming: HashSet<String>,
    engine: Option<EngineInfo>,
    /// Why the last listing failed, while it does.
    unavailable: Option<EngineError>,
    synced: bool,
    stamp: u64,
    cache: Option<(u64, i64, Arc<Vec<Group>>)>,
}

impl State {
    fn names_in_use(&self) -> HashSet<String> {
        let names = self.containers.values().map(|c| c.name.clone());
        names.chain(self.intents.values().map(|i| i.name.clone())).collect()
    }

    /// Sets a container's record, stamped by the write that set it.
    fn put(&mut self, container: ContainerSummary, stamp: u64) {
        self.removed.remove(&container.id);
        self.stamps.insert(container.id.clone(), stamp);
        self.containers.insert(container.id.clone(), container);
    }

    fn touch(&mut self) -> u64 {
        self.stamp += 1;
        self.stamp
    }

    fn groups(&mut self, scope: &Scope) -> Arc<Vec<Group>> {
        // Schedules change what the groups are from one minute to the next.
        let minute = crate::base::clock::utc_now().timestamp() / 60;
        if let Some((stamp, at, groups)) = &self.cache {
            if *stamp == self.stamp && *at == minute {
                return groups.clone();
            }
        }
        let intents: Vec<Intent> = self.intents.values().cloned().collect();
        let inputs = build::Inputs {
            containers: &self.containers,
            services: &self.services,
            intents: &intents,
            leaving: &self.leaving,
            warming: &self.warming,
            now: crate::base::clock::utc_now(),
        };
        let groups = Arc::new(build::groups(scope, &inputs));
        self.cache = Some((self.stamp, minute, groups.clone()));
        groups
    }
}

impl Inventory {
    /// An empty inventory for `scope`; [`Informer`] fills it.
    pub fn new(scope: Scope) -> Arc<Self> {
        Arc::new(Self {
            scope,
            state: Mutex::new(State::default()),
            changes: watch::channel(0).0,
            resync_wanted: tokio::sync::Notify::new(),
        })
    }

    /// What this replicator manages.
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind: keep serving it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn changed(&self, stamp: u64) {
        self.changes.send_replace(stamp);
    }

    /// A receiver that sees every change of the groups.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// The swarm's nodes as last listed (empty off a Swarm manager).
    pub fn nodes(&self) -> Vec<NodeSummary> {
        self.lock().nodes.clone()
    }

    /// Every managed group, by name; an error while the engine has never
    /// been listed or its last listing failed.
    pub fn groups(&self) -> Result<Arc<Vec<Group>>> {
        let mut state = self.lock();
        if let Some(e) = &state.unavailable {
            return Err(Error::Engine(e.clone()));
        }
        if !state.synced {
            return Err(Error::Engine(EngineError::new(
                Op::ListContainers,
                "",
                ErrorKind::Unavailable,
                "not listed yet",
            )));
        }
        Ok(state.groups(&self.scope))
    }

    /// [`Self::groups`], but when the engine could not be listed, asks the
    /// informer to try again now and waits up to `patience` for it: the
    /// first request after the engine comes back need not fail.
    pub async fn fresh_groups(&self, patience: std::time::Duration) -> Result<Arc<Vec<Group>>> {
        let mut changes = self.subscribe();
        let first = self.groups();
        if !matches!(&first, Err(Error::Engine(e)) if e.is_unreachable()) {
            return first;
        }
        self.resync_wanted.notify_one();
        let wait = async {
            while changes.changed().await.is_ok() {
                if let Ok(groups) = self.groups() {
                    return Ok(groups);
                }
            }
            first.clone()
        };
        tokio::time::timeout(patience, wait).await.unwrap_or_else(|_| self.groups())
    }

    /// Resolves when a reader asked for a listing now.
    pub async fn resync_wanted(&self) {
        self.resync_wanted.notified().await;
    }

    /// One group by name.
    pub fn group(&self, name: &str) -> Result<Group> {
        let groups = self.groups()?;
        groups.iter().find(|g| g.name() == name).cloned().ok_or_else(|| Error::GroupNotFound(name.to_owned()))
    }

    /// The engine's kind, version and Swarm role, as last probed.
    pub fn engine(&self) -> Option<EngineInfo> {
        self.lock().engine.clone()
    }

    /// A container by full id, name, or unique id prefix (as the docker CLI resolves them).
    pub fn container(&self, reference: &str) -> Option<ContainerSummary> {
        let state = self.lock();
        if let Some(c) = state.containers.get(reference) {
            return Some(c.clone());
        }
        if let Some(c) = state.containers.values().find(|c| c.name == reference) {
            return Some(c.clone());
        }
        let mut prefixed = state.containers.values().filter(|c| c.id.starts_with(reference));
        match (prefixed.next(), prefixed.next()) {
            (Some(c), None) => Some(c.clone()),
            _ => None,
        }
    }

    /// Names in use by any container, or reserved for one being created.
    pub fn names_in_use(&self) -> HashSet<String> {
        self.lock().names_in_use()
    }

    /// Replicas of requests that were cut off (replicator died before it
    /// had started every replica of the request): every replica of a request
    /// of which one is still created-but-never-started, unless this process
    /// is working on that request now. A replica without a request label
    /// (made before requests were labelled) counts as a request of its own.
    pub fn abandoned_replicas(&self) -> Vec<ContainerSummary> {
        let state = self.lock();
        let in_flight: HashSet<&str> = state.intents.values().map(|i| i.request.as_str()).collect();
        let ours = |c: &&ContainerSummary| {
            c.labels.contains_key(labels::SOURCE)
                && c.labels.contains_key(labels::GROUP)
                && self.scope.selects(&c.labels)
        };
        let request = |c: &ContainerSummary| c.labels.get(labels::REQUEST).cloned().unwrap_or_else(|| c.id.clone());
        let cut_off: HashSet<String> = state
            .containers
            .values()
            .filter(ours)
            .filter(|c| c.state == RunState::Created)
            .map(request)
            .filter(|r| !in_flight.contains(r.as_str()))
            .collect();
        state.containers.values().filter(ours).filter(|c| cut_off.contains(&request(c))).cloned().collect()
    }

    /// Reserves `count` places and names for the replicas of `request` in
    /// `group`, if the group's size (members holding a place, and replicas
    /// already being made) stays within `max`. Checked and reserved under
    /// one lock: exact under concurrency.
    pub fn reserve(
        self: &Arc<Self>,
        group: &str,
        request: &str,
        count: usize,
        max: Option<usize>,
        naming: &crate::rules::bounds::Naming,
    ) -> Option<Reservation> {
        let mut state = self.lock();
        let size = state.groups(&self.scope).iter().find(|g| g.name() == group).map_or(0, Group::size);
        // Standbys (no `max`) come on top of the members.
        if max.is_some_and(|max| size + count > max) {
            return None;
        }
        let mut taken = state.names_in_use();
        let mut keys = Vec::new();
        for _ in 0..count {
            let name = naming.next_free(&taken);
            taken.insert(name.clone());
            let key = state.touch();
            let standby = max.is_none();
            state
                .intents
                .insert(key, Intent { group: group.to_owned(), name, id: None, request: request.to_owned(), standby });
            keys.push(key);
        }
        let stamp = state.stamp;
        drop(state);
        self.changed(stamp);
        Some(Reservation { inventory: self.clone(), keys, request: request.to_owned(), count, standby: max.is_none() })
    }

    /// Marks members as leaving (`Draining`, then `Stopping`): they stop
    /// counting, and leave the balancers, at once.
    pub fn mark_leaving(self: &Arc<Self>, ids: &[String], how: MemberState) -> Leaving {
        self.set_leaving(ids, how);
        Leaving { inventory: self.clone(), ids: ids.to_vec() }
    }

    /// Marks a standby as warming (started, to be paused once ready) or not.
    pub fn set_warming(&self, id: &str, warming: bool) {
        self.write(|state, _| {
            if warming {
                state.warming.insert(id.to_owned());
            } else {
                state.warming.remove(id);
            }
        });
    }

    fn set_leaving(&self, ids: &[String], how: MemberState) {
        self.write(|state, _| state.leaving.extend(ids.iter().map(|id| (id.clone(), how))));
    }

    /// Records a container as replicator just saw it (created, started, inspected).
    /// A fresher record of the same container from the informer is kept.
    pub fn observe(&self, container: ContainerSummary) {
        self.write(|state, stamp| {
            let record = match state.containers.remove(&container.id) {
                Some(existing) => merge(&existing, container),
                None => container,
            };
            state.put(record, stamp);
        });
    }

    /// Records a container as the engine reports it now (the informer's truth).
    pub fn record(&self, container: ContainerSummary) {
        self.write(|state, stamp| state.put(container, stamp));
    }

    /// Records that a container is gone.
    pub fn forget(&self, id: &str) {
        self.write(|state, stamp| {
            state.containers.remove(id);
            state.stamps.remove(id);
            state.removed.insert(id.to_owned(), stamp);
        });
    }

    /// Renames a known container (an event's news, no inspect needed).
    pub fn rename(&self, id: &str, name: &str) {
        self.write(|state, stamp| {
            if let Some(c) = state.containers.get_mut(id) {
                c.name = name.to_owned();
                state.stamps.insert(id.to_owned(), stamp);
            }
        });
    }

    /// The stamp a listing about to start must quote to [`Self::replace`].
    pub fn listing_started(&self) -> u64 {
        self.lock().touch()
    }

    /// Replaces the containers with a full listing begun at `began`. Writes
    /// made since then are newer than the listing and survive it.
    pub fn replace(&self, began: u64, listing: Vec<ContainerSummary>) {
        self.write(|state, stamp| {
            let mut containers = HashMap::with_capacity(listing.len());
            let mut stamps = HashMap::with_capacity(listing.len());
            for c in listing {
                if state.removed.get(&c.id).is_none_or(|at| *at <= began) {
                    stamps.insert(c.id.clone(), stamp);
                    containers.insert(c.id.clone(), c);
                }
            }
            // Written after the listing began: newer than what it says.
            let newer: Vec<(String, u64)> =
                state.stamps.iter().filter(|(_, at)| **at > began).map(|(id, at)| (id.clone(), *at)).collect();
            for (id, at) in newer {
                if let Some(c) = state.containers.remove(&id) {
                    containers.insert(id.clone(), c);
                    stamps.insert(id, at);
                }
            }
            state.containers = containers;
            state.stamps = stamps;
            state.removed.retain(|_, at| *at > began);
            state.synced = true;
            state.unavailable = None;
        });
    }

    /// Replaces the Swarm services (empty when the engine is no Swarm manager).
    pub fn replace_services(&self, services: Vec<SwarmService>, nodes: Vec<NodeSummary>) {
        self.write(|state, _| {
            state.services = services.into_iter().map(|s| (s.details.id.clone(), s)).collect();
            state.nodes = nodes;
        });
    }

    /// Updates one Swarm service (after a change or an event of one of its tasks).
    pub fn update_service(&self, service: SwarmService) {
        self.write(|state, _| {
            state.services.insert(service.details.id.clone(), service);
        });
    }

    /// Records what the engine is (probed at each listing).
    pub fn set_engine(&self, info: EngineInfo) {
        self.lock().engine = Some(info);
    }

    /// Records that the engine cannot be listed: readers get the reason until it can.
    pub fn set_unavailable(&self, reason: EngineError) {
        self.write(|state, _| state.unavailable = Some(reason));
    }

    fn release(&self, keys: &[u64]) {
        self.write(|state, _| {
            for key in keys {
                state.intents.remove(key);
            }
        });
    }

    fn unmark(&self, ids: &[String]) {
        self.write(|state, _| {
            for id in ids {
                state.leaving.remove(id);
            }
        });
    }

    /// One change under the lock, stamped, then announced to subscribers
    /// (after the lock is released, so they can read at once).
    fn write<T>(&self, change: impl FnOnce(&mut State, u64) -> T) -> T {
        let mut state = self.lock();
        let stamp = state.touch();
        let result = change(&mut state, stamp);
        drop(state);
        self.changed(stamp);
        result
    }
}

/// A record the informer already holds may know more (addresses) or newer
/// (a state after ours): keep what replicator's own record cannot know.
fn merge(existing: &ContainerSummary, mine: ContainerSummary) -> ContainerSummary {
    let state = match (existing.state, mine.state) {
        (RunState::Created, newer) => newer,
        (known, _) => known,
    };
    ContainerSummary {
        networks: if mine.networks.is_empty() { existing.networks.clone() } else { mine.networks },
        published: if mine.published.is_empty() { existing.published.clone() } else { mine.published },
        image_id: if mine.image_id.is_empty() { existing.image_id.clone() } else { mine.image_id },
        // The engine's word on health is newer than replicator's guess.
        health: existing.health.or(mine.health),
        state,
        ..mine
    }
}

/// Places held in a group for replicas being created; given back on drop.
pub struct Reservation {
    inventory: Arc<Inventory>,
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
        let state = self.inventory.lock();
        self.keys.iter().filter_map(|k| state.intents.get(k)).map(|i| i.name.clone()).collect()
    }

    /// Records the id the engine gave the replica reserved as `index`.
    pub fn created(&self, index: usize, id: &str) {
        let key = self.keys.get(index);
        self.inventory.write(|state, _| {
            if let Some(intent) = key.and_then(|k| state.intents.get_mut(k)) {
                intent.id = Some(id.to_owned());
            }
        });
    }

    /// Swaps the name reserved as `index` (taken meanwhile) for the next free one.
    pub fn rename(&self, index: usize, naming: &crate::rules::bounds::Naming) -> String {
        let key = self.keys.get(index);
        self.inventory.write(|state, _| {
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
        self.inventory.release(&self.keys);
    }
}

/// Members marked as leaving; unmarked on drop (by then they are gone, or
/// their removal failed and they count again).
pub struct Leaving {
    inventory: Arc<Inventory>,
    ids: Vec<String>,
}

impl Leaving {
    /// Moves the members on from draining to stopping.
    pub fn stopping(&self) {
        self.inventory.set_leaving(&self.ids, MemberState::Stopping);
    }
}

impl Drop for Leaving {
    fn drop(&mut self) {
        self.inventory.unmark(&self.ids);
    }
}
