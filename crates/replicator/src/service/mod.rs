//! The commands: replicate a container, scale a group, wake it, reach a
//! ready member, and the control loops that keep groups as they should be.
//! Knows neither HTTP nor bollard: callers pass validated input, the engine
//! is a port, and group state is read from the [`Inventory`](crate::inventory),
//! where each command also records its intents.
//!
//! [`Replicator`] is the facade the API, the fronts and the autoscaler call;
//! each method is one step into a part. The parts are small types over the
//! shared [`core`] state, each with one job, layered so that data flows one
//! way (a command reads its group once, under the group's lock, and hands
//! that snapshot down): `scale` and `replicate` above `admission` (ceilings,
//! reservations, standby promotion through `pool`), `growth` (create, start,
//! roll back), `shrinking` (mark leaving, drain, stop or pause into the
//! pool) and `sleep` (to zero and back); `keeper`, `idle`, `reconcile` and
//! the `prober` run in the background; `reach` holds requests and
//! connections until a member is ready. No file imports this one.

pub mod acting;
mod activity;
mod admission;
mod capacity;
mod ceilings;
pub mod connections;
mod core;
pub mod events;
mod growth;
mod idle;
mod keeper;
mod lease;
mod locks;
mod pool;
mod prober;
mod reach;
mod ready;
mod reconcile;
mod replica;
mod replicate;
mod scale;
mod settings;
mod shrinking;
mod sleep;
mod source;
mod swarm;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use self::core::Core;
use crate::base::id::ContainerRef;
use crate::base::telemetry::Telemetry;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::inventory::{Group, Intents, Store};
use crate::rules::backends::Backend;
use crate::service::events::EventHub;

pub use capacity::{ColdStart, How};
pub use lease::LeaseSettings;
pub use prober::Prober;
pub use reach::{FirstReady, Reach, Reached, Waiter};
pub use replica::{Replica, Replication};
pub use replicate::MAX_COUNT;
pub use settings::{Caller, Settings};

/// A background task of the service.
pub type Worker = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The service's background tasks, by whether they change the world.
pub struct Workers {
    /// Run only while this process acts.
    pub acting: ActingLoops,
    /// Run always.
    pub observing: Vec<Worker>,
}

/// The loops that change the world, started anew each time this process
/// comes to act, and the lease that decides when (with several replicators).
pub struct ActingLoops(Arc<Core>);

impl ActingLoops {
    /// The reconcile pass, the pool keeper and the idle watch, until `cancel`.
    pub fn start(&self, cancel: &CancellationToken) -> Vec<Worker> {
        let core = &self.0;
        vec![
            Box::pin(reconcile::keep_reconciling(core.clone(), cancel.clone())),
            Box::pin(keeper::Keeper(core.clone()).run(cancel.clone())),
            Box::pin(idle::keep_idle_groups_asleep(core.clone(), cancel.clone())),
        ]
    }

    /// Wins, keeps and, at `cancel`, leaves the lease, moving the role.
    pub fn keep_lease(&self, lease: LeaseSettings, cancel: CancellationToken) -> Worker {
        Box::pin(lease::keep_the_lease(self.0.clone(), lease, cancel))
    }
}

/// The service: cheap to clone, shared by every request and background task.
#[derive(Clone)]
pub struct Replicator {
    core: Arc<Core>,
}

impl Replicator {
    /// A service acting on `engine`, reading group state from `store` and
    /// recording what it does in `intents`, and waiting on the followers of
    /// `events` before it stops a draining member.
    pub fn new(
        engine: Arc<dyn Engine>,
        inventory: (Store, Intents),
        events: Arc<EventHub>,
        settings: Settings,
        telemetry: Arc<Telemetry>,
    ) -> Self {
        Self { core: Arc::new(Core::new(engine, inventory, events, settings, telemetry)) }
    }

    /// A service over `engine`, its inventory listed once, for unit tests.
    #[cfg(test)]
    pub(crate) async fn for_test(engine: Arc<crate::engine::fake::FakeEngine>, scope: crate::inventory::Scope) -> Self {
        let crate::inventory::Inventory { writer, store, intents } = crate::inventory::Inventory::new(scope);
        let informer = crate::inventory::Informer::new(engine.clone(), writer, Duration::from_secs(3600));
        informer.resync().await.expect("the fake engine lists");
        Self::new(engine, (store, intents), Default::default(), Settings::default(), Arc::new(Telemetry::default()))
    }

    /// The control loops: those that act (the reconcile pass, the pool
    /// keeper, the idle watch), to start each time this process comes to
    /// act, and those that only observe (the readiness probes), until
    /// `observing` is cancelled.
    pub fn workers(&self, observing: &CancellationToken) -> Workers {
        let core = &self.core;
        let prober = Prober::new(core.store.clone(), core.intents.clone());
        Workers { acting: ActingLoops(core.clone()), observing: vec![Box::pin(prober.run(observing.clone()))] }
    }

    /// replicator's own event stream.
    pub fn events(&self) -> &Arc<EventHub> {
        &self.core.events
    }

    /// Counters and histograms for `/metrics`.
    pub fn telemetry(&self) -> &Telemetry {
        &self.core.telemetry
    }

    /// The engine this service acts on.
    pub fn engine(&self) -> &dyn Engine {
        self.core.engine.as_ref()
    }

    /// The model of groups and members, as this service reads it.
    pub fn inventory(&self) -> &Store {
        &self.core.store
    }

    /// Open connections per member, as the TCP front counts them.
    pub fn connections(&self) -> &Arc<connections::Connections> {
        &self.core.connections
    }

    /// Every managed group, by name, as the inventory holds them now.
    pub fn groups(&self) -> Result<Arc<Vec<Group>>> {
        self.core.store.groups()
    }

    /// Every managed group; when the engine could not be listed, one more
    /// try first (bounded by the engine timeout).
    pub async fn fresh_groups(&self) -> Result<Arc<Vec<Group>>> {
        self.core.fresh_groups().await
    }

    /// One group by name (see [`Self::fresh_groups`]).
    pub async fn group(&self, name: &str) -> Result<Group> {
        self.core.group(name).await
    }

    /// The full id of the container `target` names and the group it belongs
    /// to (for callers that report on behalf of a container: metric pushes).
    pub async fn locate(&self, target: &ContainerRef) -> Result<(String, Group)> {
        let core = &self.core;
        let id = match core.store.container(target.as_str()) {
            Some(c) => c.id,
            None => {
                let details = core.inspect_target(target).await?;
                core.intents.observe(details.summary());
                details.id
            }
        };
        let groups = core.fresh_groups().await?;
        let group = groups.iter().find(|g| g.members.iter().any(|m| m.id == id)).cloned().ok_or_else(|| {
            Error::Conflict(format!("container {target} is not a member of any group this replicator manages"))
        })?;
        Ok((id, group))
    }

    /// Creates `count` clones of `target`, all or nothing; a Swarm task's
    /// service is scaled instead. With `ready_within`, answers once every
    /// clone is ready, or removes them all when one is not in time.
    pub async fn replicate(
        &self,
        target: &ContainerRef,
        count: u32,
        caller: &Caller,
        ready_within: Option<Duration>,
    ) -> Result<Replication> {
        replicate::replicate(&self.core, target, count, caller, ready_within).await
    }

    /// Brings group `name` to `replicas` members, original included.
    /// With `ready_within`, a scale-up answers once the new members are
    /// ready, or removes them all when one is not in time.
    pub async fn scale(
        &self,
        name: &str,
        replicas: u32,
        caller: &str,
        ready_within: Option<Duration>,
    ) -> Result<Group> {
        scale::scale(&self.core, name, replicas, caller, ready_within).await
    }

    /// Moves group `name` by `step` members (down when negative), within its
    /// bounds. Returns the sizes before and after.
    pub async fn scale_by(&self, name: &str, step: i64, caller: &str) -> Result<(u32, u32)> {
        scale::scale_by(&self.core, name, step, caller).await
    }

    /// Wakes a sleeping group to one member (its originals), waiting until
    /// they are ready when asked; a group awake already is left as it is.
    pub async fn wake(&self, name: &str, caller: &str, ready_within: Option<Duration>) -> Result<Group> {
        scale::wake(&self.core, name, caller, ready_within).await
    }

    /// Waits for a ready member of `reach.group` (waking the group if it
    /// sleeps) and runs `attempt` on it; an `Err` from the attempt (a refused
    /// connection) is tried again with backoff until the deadline.
    pub async fn reach<T, F, Fut>(&self, reach: Reach<'_>, waiter: &mut impl Waiter, attempt: F) -> Result<Reached<T>>
    where
        F: FnMut(Backend) -> Fut,
        Fut: Future<Output = std::result::Result<T, String>>,
    {
        reach::Reacher(&self.core).reach(reach, waiter, attempt).await
    }

    /// A request to `group` went by (held by the wake listener, or reported
    /// by the balancer's mirror): its quiet period starts again.
    pub fn saw_request(&self, group: &str) {
        self.core.activity.touch(group);
    }

    /// Whether this process acts, and the handover of acting to a successor.
    pub fn acting(&self) -> &acting::Acting {
        &self.core.acting
    }

    /// The last cold starts of a group, oldest first.
    pub fn cold_starts(&self, group: &str) -> Vec<ColdStart> {
        self.core.capacity.recent(group)
    }
}
