//! The informer's side of the inventory: it alone sets what the engine
//! says, from listings and events. Each write is stamped, so a listing
//! never overwrites what was written after it began.

use std::collections::HashMap;
use std::sync::Arc;

use super::build::{Scope, SwarmService};
use super::state::Shared;
use crate::engine::EngineError;
use crate::model::{ContainerSummary, EngineInfo, NodeSummary, RunState};

/// Writes the engine's truth; one per inventory, held by its informer.
pub struct Writer {
    shared: Arc<Shared>,
}

impl Writer {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// What the inventory manages (the informer skips the rest).
    pub fn scope(&self) -> &Scope {
        &self.shared.scope
    }

    /// The engine as last probed.
    pub fn engine(&self) -> Option<EngineInfo> {
        self.shared.lock().engine.clone()
    }

    /// Resolves when a reader asked for a listing now.
    pub async fn resync_wanted(&self) {
        self.shared.resync_wanted.notified().await;
    }

    /// The stamp a listing about to start must quote to [`Self::replace`].
    pub fn listing_started(&self) -> u64 {
        self.shared.lock().touch()
    }

    /// Replaces the containers with a full listing begun at `began`. Writes
    /// made since then are newer than the listing and survive it.
    pub fn replace(&self, began: u64, listing: Vec<ContainerSummary>) {
        self.shared.write(|state, stamp| {
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
            // A probe's finding lasts while its container runs (or is paused).
            let running = |c: &ContainerSummary| matches!(c.state, RunState::Running | RunState::Paused);
            let containers = &state.containers;
            state.probes.retain(|id, _| containers.get(id).is_some_and(running));
            state.removed.retain(|_, at| *at > began);
            state.synced = true;
            state.unavailable = None;
        });
    }

    /// Records a container as the engine reports it now.
    pub fn record(&self, container: ContainerSummary) {
        self.shared.write(|state, stamp| state.put(container, stamp));
    }

    /// Records that a container is gone.
    pub fn forget(&self, id: &str) {
        self.shared.write(|state, stamp| state.remove(id, stamp));
    }

    /// Renames a known container (an event's news, no inspect needed).
    pub fn rename(&self, id: &str, name: &str) {
        self.shared.write(|state, stamp| {
            if let Some(c) = state.containers.get_mut(id) {
                c.name = name.to_owned();
                state.stamps.insert(id.to_owned(), stamp);
            }
        });
    }

    /// Replaces the Swarm services (empty when the engine is no Swarm manager).
    pub fn replace_services(&self, services: Vec<SwarmService>, nodes: Vec<NodeSummary>) {
        self.shared.write(|state, _| {
            state.services = services.into_iter().map(|s| (s.details.id.clone(), s)).collect();
            state.nodes = nodes;
        });
    }

    /// Updates one Swarm service (after an event of one of its tasks).
    pub fn update_service(&self, service: SwarmService) {
        self.shared.write(|state, _| {
            state.services.insert(service.details.id.clone(), service);
        });
    }

    /// Records what the engine is (probed at each listing).
    pub fn set_engine(&self, info: EngineInfo) {
        self.shared.lock().engine = Some(info);
    }

    /// Records that the engine cannot be listed: readers get the reason until it can.
    pub fn set_unavailable(&self, reason: EngineError) {
        self.shared.write(|state, _| state.unavailable = Some(reason));
    }
}
