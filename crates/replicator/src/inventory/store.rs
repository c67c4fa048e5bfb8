//! The read side of the inventory: what every reader holds. It cannot
//! change anything, only ask the informer to re-list when it finds the
//! engine lost.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::build::Scope;
use super::group::Group;
use super::state::Shared;
use crate::engine::{EngineError, ErrorKind, Op};
use crate::error::{Error, Result};
use crate::model::{ContainerSummary, EngineInfo, NodeSummary, RunState};
use crate::rules::labels;

/// A read-only view of the inventory; clones share it.
#[derive(Clone)]
pub struct Store {
    shared: Arc<Shared>,
}

impl Store {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// What this replicator manages.
    pub fn scope(&self) -> &Scope {
        &self.shared.scope
    }

    /// A receiver that sees every change of the groups.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.shared.subscribe()
    }

    /// Every managed group, by name; an error while the engine has never
    /// been listed or its last listing failed.
    pub fn groups(&self) -> Result<Arc<Vec<Group>>> {
        let mut state = self.shared.lock();
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
        Ok(state.groups(&self.shared.scope))
    }

    /// [`Self::groups`], but when the engine could not be listed, asks the
    /// informer to try again now and waits up to `patience` for it: the
    /// first request after the engine comes back need not fail.
    pub async fn fresh_groups(&self, patience: Duration) -> Result<Arc<Vec<Group>>> {
        let mut changes = self.subscribe();
        let first = self.groups();
        if !matches!(&first, Err(Error::Engine(e)) if e.is_unreachable()) {
            return first;
        }
        self.shared.resync_wanted.notify_one();
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

    /// One group by name.
    pub fn group(&self, name: &str) -> Result<Group> {
        let groups = self.groups()?;
        groups.iter().find(|g| g.name() == name).cloned().ok_or_else(|| Error::GroupNotFound(name.to_owned()))
    }

    /// A member (or standby) of a managed group, by full container id.
    pub fn member(&self, id: &str) -> Option<super::Member> {
        let groups = self.groups().ok()?;
        let mut all = groups.iter().flat_map(|g| g.members.iter().chain(&g.standbys));
        all.find(|m| m.id == id).cloned()
    }

    /// Why replicator's probe of a container last failed, if it did.
    pub fn probe_failure(&self, id: &str) -> Option<String> {
        self.shared.lock().probes.get(id).and_then(|p| p.last_failure.clone())
    }

    /// The swarm's nodes as last listed (empty off a Swarm manager).
    pub fn nodes(&self) -> Vec<NodeSummary> {
        self.shared.lock().nodes.clone()
    }

    /// The engine's kind, version and Swarm role, as last probed.
    pub fn engine(&self) -> Option<EngineInfo> {
        self.shared.lock().engine.clone()
    }

    /// A container by full id, name, or unique id prefix (as the docker CLI resolves them).
    pub fn container(&self, reference: &str) -> Option<ContainerSummary> {
        let state = self.shared.lock();
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

    /// Replicas of requests that were cut off (replicator died before it
    /// had started every replica of the request): every replica of a request
    /// of which one is still created-but-never-started, unless this process
    /// is working on that request now. A replica without a request label
    /// (made before requests were labelled) counts as a request of its own.
    pub fn abandoned_replicas(&self) -> Vec<ContainerSummary> {
        let state = self.shared.lock();
        let in_flight: HashSet<&str> = state.intents.values().map(|i| i.request.as_str()).collect();
        let scope = &self.shared.scope;
        let ours = |c: &&ContainerSummary| {
            c.labels.contains_key(labels::SOURCE) && c.labels.contains_key(labels::GROUP) && scope.selects(&c.labels)
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

    /// A second writer over this store, for tests that run their own informer.
    #[cfg(test)]
    pub(crate) fn writer_for_test(&self) -> super::Writer {
        super::Writer::new(self.shared.clone())
    }
}
