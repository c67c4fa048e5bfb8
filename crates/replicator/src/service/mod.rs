//! The commands: replicate a container, scale a group, remove the debris of
//! cut-off replications. Knows neither HTTP nor bollard: callers pass
//! validated input, the engine is a port, and group state is read from the
//! [`Inventory`], where each command also records its intents.

mod capacity;
mod ceilings;
pub mod connections;
pub mod events;
mod idle;
mod locks;
mod pool;
mod prober;
mod reach;
mod ready;
mod reconcile;
mod replicate;
mod scale;
mod sleep;
mod swarm;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::base::id::ContainerRef;
use crate::base::telemetry::Telemetry;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::inventory::{Group, Intents, Store};
use crate::service::events::EventHub;

pub use capacity::{ColdStart, How};
pub use prober::Prober;
pub use reach::{FirstReady, Reach, Reached, Waiter};
pub use replicate::{Replica, Replication, MAX_COUNT};

/// Policy switches from the command line.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Keep fixed host ports on clones instead of publishing ephemeral ones.
    pub keep_host_ports: bool,
    /// How long a replica may take to stop before it is killed.
    pub stop_timeout: Duration,
    /// Our own container, never replicated.
    pub self_id: Option<String>,
    /// Longest a command waits for the inventory to re-list a lost engine.
    pub engine_timeout: Duration,
    /// Longest a scale-down waits for the balancers to let a draining member go.
    pub drain_timeout: Duration,
    /// How long a standby without a healthcheck runs before it counts as ready and is paused.
    pub warm_settle: Duration,
    /// Most containers replicator may have made at once (replicas and standbys).
    pub max_containers: usize,
    /// Most containers replicator may create a minute.
    pub max_creations_per_minute: u32,
    /// Where replicator runs, for the connections it makes to members.
    pub vantage: crate::rules::backends::Vantage,
}

/// Who asks for a replication: the name logs and events give it, and the
/// identity the access rules check once the container's group is known
/// (before anything changes, after the checks that say whether the
/// container is replicable at all).
#[derive(Debug, Clone)]
pub struct Caller {
    /// For logs and events (a certificate's common name, `dashboard`...).
    pub name: String,
    /// What it may do.
    pub identity: crate::rules::access::Identity,
}

impl Caller {
    /// An operator named `name` (replicator's own callers, tests).
    pub fn operator(name: &str) -> Self {
        Self { name: name.to_owned(), identity: crate::rules::access::Identity::Operator }
    }

    /// `Ok` if it may replicate the containers of `group`.
    fn may_replicate(&self, group: &str, container: &str) -> Result<()> {
        let action = format!("replicate container {container}");
        Ok(self.identity.check_for(crate::rules::access::Permission::Replicate, group, &action)?)
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            keep_host_ports: false,
            stop_timeout: Duration::from_secs(10),
            self_id: None,
            engine_timeout: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(10),
            warm_settle: Duration::from_secs(5),
            max_containers: 500,
            max_creations_per_minute: 600,
            vantage: Default::default(),
        }
    }
}

/// The service: cheap to clone, shared by every request and background task.
#[derive(Clone)]
pub struct Replicator {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Arc<dyn Engine>,
    store: Store,
    intents: Intents,
    events: Arc<EventHub>,
    settings: Settings,
    locks: locks::GroupLocks,
    telemetry: Arc<Telemetry>,
    creations: ceilings::CreationRate,
    capacity: capacity::CapacityLog,
    activity: idle::Activity,
    connections: Arc<connections::Connections>,
}

impl Replicator {
    /// A service acting on `engine`, reading group state from `store` and
    /// recording what it does in `intents`, and waiting on the followers of
    /// `events` before it stops a draining member.
    pub fn new(
        engine: Arc<dyn Engine>,
        (store, intents): (Store, Intents),
        events: Arc<EventHub>,
        settings: Settings,
        telemetry: Arc<Telemetry>,
    ) -> Self {
        let locks = locks::GroupLocks::default();
        let creations = ceilings::CreationRate::new(settings.max_creations_per_minute);
        let (capacity, activity) = (capacity::CapacityLog::default(), idle::Activity::default());
        let connections = Arc::default();
        let inner = Inner {
            engine,
            store,
            intents,
            events,
            settings,
            locks,
            telemetry,
            creations,
            capacity,
            activity,
            connections,
        };
        Self { inner: Arc::new(inner) }
    }

    /// A service over `engine`, its inventory listed once, for unit tests.
    #[cfg(test)]
    pub(crate) async fn for_test(engine: Arc<crate::engine::fake::FakeEngine>, scope: crate::inventory::Scope) -> Self {
        let crate::inventory::Inventory { writer, store, intents } = crate::inventory::Inventory::new(scope);
        let informer = crate::inventory::Informer::new(engine.clone(), writer, Duration::from_secs(3600));
        informer.resync().await.expect("the fake engine lists");
        Self::new(engine, (store, intents), Default::default(), Settings::default(), Arc::new(Telemetry::default()))
    }

    /// replicator's own event stream.
    pub fn events(&self) -> &Arc<EventHub> {
        &self.inner.events
    }

    /// Counters and histograms for `/metrics`.
    pub fn telemetry(&self) -> &Telemetry {
        &self.inner.telemetry
    }

    /// The engine this service acts on.
    pub fn engine(&self) -> &dyn Engine {
        self.inner.engine.as_ref()
    }

    /// The model of groups and members, as this service reads it.
    pub fn inventory(&self) -> &Store {
        &self.inner.store
    }

    /// Where this service records what it is doing.
    pub fn intents(&self) -> &Intents {
        &self.inner.intents
    }

    /// Open connections per member, as the TCP front counts them.
    pub fn connections(&self) -> &Arc<connections::Connections> {
        &self.inner.connections
    }

    /// Waits until balancers let `members` go and their connections through
    /// the front end, both within the drain timeout; whether both happened.
    async fn drain(&self, group: &str, members: &[String]) -> bool {
        let within = self.settings().drain_timeout;
        let (balancers, connections) =
            tokio::join!(self.events().drained(group, members, within), self.connections().closed(members, within));
        balancers && connections
    }

    /// The command-line switches it was made with.
    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// Every managed group, by name, as the inventory holds them now.
    pub fn groups(&self) -> Result<Arc<Vec<Group>>> {
        self.inventory().groups()
    }

    /// Every managed group; when the engine could not be listed, one more
    /// try first (bounded by the engine timeout).
    pub async fn fresh_groups(&self) -> Result<Arc<Vec<Group>>> {
        self.inventory().fresh_groups(self.settings().engine_timeout).await
    }

    /// One group by name (see [`Self::fresh_groups`]).
    pub async fn group(&self, name: &str) -> Result<Group> {
        let groups = self.fresh_groups().await?;
        groups.iter().find(|g| g.name() == name).cloned().ok_or_else(|| Error::GroupNotFound(name.to_owned()))
    }

    /// The full id of the container `target` names and the group it belongs
    /// to (for callers that report on behalf of a container: metric pushes).
    pub async fn locate(&self, target: &ContainerRef) -> Result<(String, Group)> {
        let id = match self.inventory().container(target.as_str()) {
            Some(c) => c.id,
            None => {
                let details = self.inspect_target(target).await?;
                self.intents().observe(details.summary());
                details.id
            }
        };
        let groups = self.fresh_groups().await?;
        let group = groups.iter().find(|g| g.members.iter().any(|m| m.id == id)).cloned().ok_or_else(|| {
            Error::Conflict(format!("container {target} is not a member of any group this replicator manages"))
        })?;
        Ok((id, group))
    }

    /// Refuses what lies outside `--selector`.
    fn check_selected(&self, what: &str, labels: &std::collections::BTreeMap<String, String>) -> Result<()> {
        match &self.inventory().scope().selector {
            Some(selector) if !selector.matches(labels) => {
                Err(Error::Forbidden(format!("{what} is not managed by this replicator (its selector is {selector})")))
            }
            _ => Ok(()),
        }
    }
}

/// Runs `work` in its own task: a caller that goes away (a client
/// disconnecting) cannot stop it half-way between two engine calls.
async fn detached<T: Send + 'static>(work: impl Future<Output = Result<T>> + Send + 'static) -> Result<T> {
    tokio::spawn(work).await.map_err(|e| Error::Internal(format!("task failed: {e}")))?
}
