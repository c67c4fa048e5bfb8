//! What the three handles share: the records under one mutex, a generation
//! that readers wait on, and the derived groups, cached until the next write.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::{watch, Notify};

use super::build::{self, Intent, ProbeStatus, Scope, SwarmService};
use super::group::{Group, MemberState};
use crate::engine::EngineError;
use crate::model::{ContainerSummary, EngineInfo, NodeSummary, RunState};

/// The shared model. Cheap to read; every write bumps a generation that
/// readers can wait on.
pub(super) struct Shared {
    pub(super) scope: Scope,
    state: Mutex<State>,
    /// Bumped when anything a group is made of changes.
    changes: watch::Sender<u64>,
    /// Rung by a reader that found the inventory stale: the informer re-lists at once.
    pub(super) resync_wanted: Notify,
}

#[derive(Default)]
pub(super) struct State {
    /// Every container on the engine, by id.
    pub(super) containers: HashMap<String, ContainerSummary>,
    /// The stamp of the write that last set each container.
    pub(super) stamps: HashMap<String, u64>,
    /// Containers removed, with the stamp of the removal (until the next listing).
    pub(super) removed: HashMap<String, u64>,
    pub(super) services: BTreeMap<String, SwarmService>,
    /// The swarm's nodes, on a manager.
    pub(super) nodes: Vec<NodeSummary>,
    pub(super) intents: BTreeMap<u64, Intent>,
    /// Members on their way out, and how far along.
    pub(super) leaving: HashMap<String, MemberState>,
    /// Standbys being started, to be paused once ready.
    pub(super) warming: HashSet<String>,
    /// What replicator's own readiness probes found, by container id.
    pub(super) probes: HashMap<String, ProbeStatus>,
    pub(super) engine: Option<EngineInfo>,
    /// Why the last listing failed, while it does.
    pub(super) unavailable: Option<EngineError>,
    pub(super) synced: bool,
    stamp: u64,
    cache: Option<(u64, i64, std::sync::Arc<Vec<Group>>)>,
}

impl State {
    pub(super) fn names_in_use(&self) -> HashSet<String> {
        let names = self.containers.values().map(|c| c.name.clone());
        names.chain(self.intents.values().map(|i| i.name.clone())).collect()
    }

    /// Sets a container's record, stamped by the write that set it.
    pub(super) fn put(&mut self, container: ContainerSummary, stamp: u64) {
        self.removed.remove(&container.id);
        // A container that stopped starts its probes over when it runs again.
        if !matches!(container.state, RunState::Running | RunState::Paused) {
            self.probes.remove(&container.id);
        }
        self.stamps.insert(container.id.clone(), stamp);
        self.containers.insert(container.id.clone(), container);
    }

    /// Containers replicator made (replicas and standbys) in `scope`, and
    /// those it is making: what `--max-containers` bounds.
    pub(super) fn made_by_replicator(&self, scope: &Scope) -> usize {
        let made = self
            .containers
            .values()
            .filter(|c| c.labels.contains_key(crate::rules::labels::SOURCE) && scope.selects(&c.labels))
            .count();
        made + self.intents.values().filter(|i| i.id.is_none()).count()
    }

    /// Drops a container's record, leaving a tombstone until the next listing.
    pub(super) fn remove(&mut self, id: &str, stamp: u64) {
        self.containers.remove(id);
        self.stamps.remove(id);
        self.probes.remove(id);
        self.removed.insert(id.to_owned(), stamp);
    }

    pub(super) fn touch(&mut self) -> u64 {
        self.stamp += 1;
        self.stamp
    }

    pub(super) fn stamp(&self) -> u64 {
        self.stamp
    }

    pub(super) fn groups(&mut self, scope: &Scope) -> std::sync::Arc<Vec<Group>> {
        let now = crate::base::clock::utc_now();
        // Schedules change what the groups are from one minute to the next.
        let minute = now.timestamp() / 60;
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
            probes: &self.probes,
            now,
        };
        let groups = std::sync::Arc::new(build::groups(scope, &inputs));
        self.cache = Some((self.stamp, minute, groups.clone()));
        groups
    }
}

impl Shared {
    pub(super) fn new(scope: Scope) -> Self {
        Self { scope, state: Mutex::new(State::default()), changes: watch::channel(0).0, resync_wanted: Notify::new() }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind: keep serving it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    pub(super) fn announce(&self, stamp: u64) {
        self.changes.send_replace(stamp);
    }

    /// One change under the lock, stamped, then announced to subscribers
    /// (after the lock is released, so they can read at once).
    pub(super) fn write<T>(&self, change: impl FnOnce(&mut State, u64) -> T) -> T {
        let mut state = self.lock();
        let stamp = state.touch();
        let result = change(&mut state, stamp);
        drop(state);
        self.announce(stamp);
        result
    }
}

/// A record the informer already holds may know more (addresses) or newer
/// (a state after ours): keep what replicator's own record cannot know.
pub(super) fn merge(existing: &ContainerSummary, mine: ContainerSummary) -> ContainerSummary {
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
