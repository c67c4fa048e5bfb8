//! What every part of the service shares: the engine port, the inventory's
//! two handles, the event hub, the operator's settings, the group locks and
//! the boards the parts keep (capacity, activity, connections, creation
//! rate), with the few reads they all need. It imports no part: the parts
//! are above it and take `&Core`.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tracing::warn;

use super::acting::Acting;
use super::activity::Activity;
use super::capacity::CapacityLog;
use super::ceilings::CreationRate;
use super::connections::Connections;
use super::events::EventHub;
use super::locks::GroupLocks;
use super::settings::Settings;
use crate::base::id::ContainerRef;
use crate::base::telemetry::Telemetry;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::inventory::{Group, Intents, Store};
use crate::model::{ContainerDetails, RunState};

/// How many times a pause is tried.
const PAUSE_TRIES: u32 = 3;
/// The pause between two tries.
const PAUSE_RETRY: std::time::Duration = std::time::Duration::from_millis(250);

/// The shared state of the service.
pub(super) struct Core {
    pub engine: Arc<dyn Engine>,
    pub store: Store,
    pub intents: Intents,
    pub events: Arc<EventHub>,
    pub settings: Settings,
    pub locks: GroupLocks,
    pub telemetry: Arc<Telemetry>,
    pub creations: CreationRate,
    pub capacity: Arc<CapacityLog>,
    pub activity: Activity,
    pub connections: Arc<Connections>,
    pub acting: Acting,
    /// Reads of the groups through [`Self::fresh_groups`], so a test can
    /// hold a command's walk to the one read it is meant to make.
    group_reads: AtomicUsize,
}

impl Core {
    /// The state over `engine` and the inventory's `store` and `intents`.
    pub fn new(
        engine: Arc<dyn Engine>,
        (store, intents): (Store, Intents),
        events: Arc<EventHub>,
        settings: Settings,
        telemetry: Arc<Telemetry>,
    ) -> Self {
        Self {
            creations: CreationRate::new(settings.max_creations_per_minute),
            capacity: Arc::new(CapacityLog::new(store.clone(), telemetry.clone())),
            locks: GroupLocks::default(),
            activity: Activity::default(),
            connections: Arc::default(),
            acting: Acting::new(telemetry.clone()),
            group_reads: AtomicUsize::new(0),
            engine,
            store,
            intents,
            events,
            settings,
            telemetry,
        }
    }

    /// Every managed group; when the engine could not be listed, one more
    /// try first (bounded by the engine timeout).
    pub async fn fresh_groups(&self) -> Result<Arc<Vec<Group>>> {
        self.group_reads.fetch_add(1, Ordering::Relaxed);
        self.store.fresh_groups(self.settings.engine_timeout).await
    }

    /// How many times the groups were read through [`Self::fresh_groups`].
    #[cfg(test)]
    pub fn group_reads(&self) -> usize {
        self.group_reads.load(Ordering::Relaxed)
    }

    /// One group by name (see [`Self::fresh_groups`]).
    pub async fn group(&self, name: &str) -> Result<Group> {
        let groups = self.fresh_groups().await?;
        groups.iter().find(|g| g.name() == name).cloned().ok_or_else(|| Error::GroupNotFound(name.to_owned()))
    }

    /// One group by name, `None` when the inventory holds no such group (yet).
    pub async fn group_if_any(&self, name: &str) -> Result<Option<Group>> {
        match self.group(name).await {
            Ok(g) => Ok(Some(g)),
            Err(Error::GroupNotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The container the caller named; a 404 here means the caller's container.
    pub async fn inspect_target(&self, target: &ContainerRef) -> Result<ContainerDetails> {
        let details = self.engine.inspect_container(target.as_str()).await.map_err(|e| match e {
            e if e.is_not_found() => Error::ContainerNotFound(target.to_string()),
            e => e.into(),
        })?;
        if self.settings.self_id.as_deref() == Some(details.id.as_str()) {
            return Err(Error::Forbidden("replicator does not replicate its own container".into()));
        }
        Ok(details)
    }

    /// Refuses what lies outside `--selector`.
    pub fn check_selected(&self, what: &str, labels: &BTreeMap<String, String>) -> Result<()> {
        match &self.store.scope().selector {
            Some(selector) if !selector.matches(labels) => {
                Err(Error::Forbidden(format!("{what} is not managed by this replicator (its selector is {selector})")))
            }
            _ => Ok(()),
        }
    }

    /// Waits until balancers let `members` go and their connections through
    /// the front end, both within the drain timeout; whether both happened.
    pub async fn drain(&self, group: &str, members: &[String]) -> bool {
        let within = self.settings.drain_timeout;
        let (balancers, connections) =
            tokio::join!(self.events.drained(group, members, within), self.connections.closed(members, within));
        balancers && connections
    }

    /// Records a state replicator just gave a container, before the engine's event.
    pub fn set_state(&self, id: &str, state: RunState) {
        self.intents.state_changed(id, state);
    }

    /// Pauses a container, trying again a moment later when the runtime
    /// fails to freeze it (cgroup freezing can fail on a busy host, "unable
    /// to freeze"); a container that is gone is not tried again.
    pub async fn pause(&self, id: &str) -> Result<()> {
        let mut tries = 1;
        loop {
            match self.engine.pause_container(id).await {
                Ok(()) => return Ok(()),
                Err(e) if e.is_not_found() || tries == PAUSE_TRIES => return Err(e.into()),
                Err(e) => {
                    warn!(container = %id, error = %e, tries, "pause failed; trying again");
                    tokio::time::sleep(PAUSE_RETRY).await;
                    tries += 1;
                }
            }
        }
    }

    /// Rollback must not hide the error that caused it; a failed removal is logged.
    pub async fn remove_quietly(&self, id: &str) {
        match self.engine.remove_container(id).await {
            Ok(()) => self.intents.removed(id),
            Err(e) if e.is_not_found() => self.intents.removed(id),
            Err(e) => warn!(container = %id, error = %e, "could not remove a container during rollback"),
        }
    }
}

/// Runs `work` in its own task: a caller that goes away (a client
/// disconnecting) cannot stop it half-way between two engine calls.
pub(super) async fn detached<T: Send + 'static>(work: impl Future<Output = Result<T>> + Send + 'static) -> Result<T> {
    tokio::spawn(work).await.map_err(|e| Error::Internal(format!("task failed: {e}")))?
}
