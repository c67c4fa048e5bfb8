//! The whole server as a library call, in the style of mini-redis:
//! [`run`] takes bound listeners and a shutdown future, starts every
//! background task under cancellation tokens and `JoinSet`s, and on
//! shutdown stops them in phases and waits for each (scale changes the
//! autoscaler started finish, then requests in flight, then the inventory's
//! own tasks).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::autoscale::{AutoscaleHandle, AutoscaleSettings, Autoscaler};
use crate::base::handover::Sockets;
use crate::base::telemetry::Telemetry;
use crate::engine::{Engine, FencedEngine};
use crate::http::admin::{self, AdminState};
use crate::http::api::{self, AppState, RateLimiter, ServerOptions};
use crate::inventory::{Informer, Inventory, Scope};
use crate::rules::access::UnboundPolicy;
use crate::service::acting::Role;
use crate::service::events::EventHub;
use crate::service::{ActingLoops, LeaseSettings, Replicator, Settings};
use crate::takeover::{Control, Predecessor, Successor};
use crate::tls::ServerTls;

/// The two listeners, bound by the caller (port 0 in tests).
pub struct Listeners {
    /// The mutual-TLS API.
    pub api: TcpListener,
    /// Plain HTTP: health, metrics, dashboard.
    pub admin: TcpListener,
    /// Plain HTTP, for the balancer's host: holds requests for sleeping groups.
    pub wake: Option<TcpListener>,
}

/// Everything `run` needs besides the listeners.
pub struct Config {
    /// The API's TLS configuration (client certificates required), reloadable.
    pub tls: Arc<ServerTls>,
    /// What a client certificate without a replicator identity may do.
    pub unbound: UnboundPolicy,
    /// Who may act from the dashboard when its buttons may; `None`: it only shows.
    pub dashboard_actions: Option<crate::http::admin::DashboardActions>,
    /// The engine to act on.
    pub engine: Arc<dyn Engine>,
    /// What this replicator manages.
    pub scope: Scope,
    /// The service's switches.
    pub settings: Settings,
    /// The autoscaler's loop.
    pub autoscale: AutoscaleSettings,
    /// `serve --dry-run`.
    pub dry_run: bool,
    /// How often the inventory re-lists the engine.
    pub resync: Duration,
    /// How often a Swarm manager's services, tasks and nodes are read again.
    pub swarm_poll: Duration,
    /// How the wake listener holds requests.
    pub wake: crate::http::wake::WakeSettings,
    /// How the TCP fronts listen and hold; `None`: no fronts (`--front-ports` not set).
    pub front: Option<crate::front::FrontSettings>,
    /// The alert label naming the group an Alertmanager alert scales.
    pub alert_group_label: String,
    /// The API listener's limits.
    pub server: ServerOptions,
    /// `--rate-limit`, per client address.
    pub rate_limit: Option<f64>,
    /// Where every component counts.
    pub telemetry: Arc<Telemetry>,
    /// The listening sockets, to hand to a successor (and the predecessor's, inherited).
    pub sockets: Arc<Sockets>,
    /// The control socket and the predecessor, if any; `None`: no takeover (`--control-socket none`).
    pub takeover: Option<Takeover>,
    /// The lease that decides which of several replicators acts; `None`: this one always does.
    pub lease: Option<LeaseSettings>,
    /// How commands and wakes reach the leader while another acts (`--peer-certs`).
    pub forwarder: Option<Arc<api::Forwarder>>,
}

/// This process's control socket, and the predecessor it takes over from.
pub struct Takeover {
    /// Where a successor asks; `None` when the default one could not be made.
    pub control: Option<Control>,
    /// The process that handed its sockets over, until it stops acting.
    pub predecessor: Option<Predecessor>,
}

/// The tasks that act on the world (autoscaler, keeper, idle watch,
/// reconcile), started only once this process acts.
struct ActingTasks {
    tracker: TaskTracker,
    cancel: CancellationToken,
}

impl ActingTasks {
    /// Stops them, each change they began finishing, and waits.
    async fn stop(&self) {
        self.cancel.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

/// Serves until `shutdown` resolves, or until a successor takes over; then
/// stops every task and waits for it.
pub async fn run(listeners: Listeners, mut config: Config, shutdown: impl Future<Output = ()>) {
    let Inventory { writer, store, intents } = Inventory::new(config.scope.clone());
    let informer = Informer::new(config.engine.clone(), writer, config.resync).with_swarm_poll(config.swarm_poll);
    first_look(&informer, &store).await;
    if let Some(warning) = config.unbound.warning() {
        warn!("{warning}");
    }
    let (control, predecessor) = config.takeover.take().map_or((None, None), |t| (t.control, t.predecessor));
    let events = Arc::new(EventHub::continuing_after(predecessor.as_ref().map_or(0, |p| p.handover.events_after)));
    let service = service_of(&config, (store.clone(), intents), &events, predecessor.is_some());
    let autoscale =
        AutoscaleHandle::new(Arc::new(service.clone()), events.clone(), config.dry_run, config.autoscale.metric_ttl);

    let phases = Phases::default();
    let acting = ActingTasks { tracker: TaskTracker::new(), cancel: phases.background.child_token() };
    let workers = service.workers(&phases.background);
    let mut background = spawn_background((informer, store), &events, &service, &config, workers.observing, &phases);
    let actor = Actor {
        service: service.clone(),
        loops: workers.acting,
        autoscale: (autoscale.clone(), config.telemetry.clone(), config.autoscale.clone()),
    };
    acting.tracker.spawn(actor.act(predecessor, config.lease.clone(), acting.cancel.clone()));
    let mut listening = spawn_listeners(listeners, &config, service.clone(), autoscale, &phases.serving);

    let handed_over =
        until_stopped(shutdown, control.as_ref(), (&config.sockets, &events), &phases, &acting, &service).await;
    // Stopped in this order, each phase awaited: what acts (its changes
    // finish while balancers still follow), then the listeners (requests in
    // flight finish while the inventory still follows the engine), then the
    // inventory's own tasks.
    acting.stop().await;
    // Event streams end first: they would hold the listeners' graceful drain open.
    events.close();
    // Kept for a successor, the copies would keep each socket listening,
    // its backlog reset at exit rather than refused (which balancers retry).
    config.sockets.release();
    phases.stop_accepting();
    join_all_of(&mut listening).await;
    // Spliced connections end on their own, a command at a time, within the grace.
    wait_for_front_connections(&phases.front_connections, config.server.shutdown_grace).await;
    phases.background.cancel();
    join_all_of(&mut background).await;
    if let (Some(control), false) = (&control, handed_over) {
        control.remove();
    }
    info!("stopped");
}

/// The service, over the engine behind the lease's fence when there is a
/// lease, and holding its commands until it may act.
fn service_of(
    config: &Config,
    inventory: (crate::inventory::Store, crate::inventory::Intents),
    events: &Arc<EventHub>,
    has_predecessor: bool,
) -> Replicator {
    let engine: Arc<dyn Engine> = match &config.lease {
        // Every call that changes the world passes the lease's fence.
        Some(lease) => Arc::new(FencedEngine::new(config.engine.clone(), lease.fence.clone())),
        None => config.engine.clone(),
    };
    let service = Replicator::new(engine, inventory, events.clone(), config.settings.clone(), config.telemetry.clone());
    if has_predecessor {
        // Before anything can issue a command: the predecessor still acts.
        service.acting().wait_for_predecessor();
    } else if config.lease.is_some() {
        service.acting().await_lease();
    }
    if let Some(forwarder) = &config.forwarder {
        service.acting().link_to_leader(forwarder.clone());
    }
    service
}

/// The tokens that stop each phase, and the fronts' spliced connections.
#[derive(Default)]
struct Phases {
    /// The listeners: they stop accepting and finish their requests.
    serving: CancellationToken,
    /// The fronts' listeners (their connections go on).
    fronts: CancellationToken,
    /// Every connection a front splices.
    front_connections: TaskTracker,
    /// The inventory, the event hub's follower, the probes.
    background: CancellationToken,
}

impl Phases {
    /// No listener of this process accepts from now on.
    fn stop_accepting(&self) {
        self.serving.cancel();
        self.fronts.cancel();
    }
}

/// The inventory's informer, the event hub's follower, the observing
/// workers and the fronts.
fn spawn_background(
    (informer, store): (Informer, crate::inventory::Store),
    events: &Arc<EventHub>,
    service: &Replicator,
    config: &Config,
    observing: Vec<crate::service::Worker>,
    phases: &Phases,
) -> JoinSet<()> {
    let mut tasks = JoinSet::new();
    tasks.spawn(informer.run(phases.background.clone()));
    tasks.spawn(events.clone().follow(store, phases.background.clone()));
    for worker in observing {
        tasks.spawn(worker);
    }
    match config.front {
        Some(front) => {
            let (sockets, connections) = (config.sockets.clone(), phases.front_connections.clone());
            tasks.spawn(crate::front::run(service.clone(), front, sockets, connections, phases.fronts.clone()));
        }
        None => close_unclaimed(&config.sockets),
    }
    tasks
}

/// What acts while this process does: the control loops and the autoscaler.
struct Actor {
    service: Replicator,
    loops: ActingLoops,
    autoscale: (Arc<AutoscaleHandle>, Arc<Telemetry>, AutoscaleSettings),
}

impl Actor {
    /// Waits until the predecessor (if any) no longer acts, then acts until
    /// `cancel`: at once without a lease, else in each term the lease is held.
    async fn act(self, predecessor: Option<Predecessor>, lease: Option<LeaseSettings>, cancel: CancellationToken) {
        if let Some(predecessor) = predecessor {
            tokio::select! {
                () = predecessor.released() => {}
                () = cancel.cancelled() => return,
            }
            if lease.is_none() {
                self.service.acting().grant();
            }
        }
        let Some(lease) = lease else { return self.term(cancel).await };
        let elector = tokio::spawn(self.loops.keep_lease(lease, cancel.clone()));
        while !cancel.is_cancelled() {
            let acting = self.service.acting();
            if acting.role() != Role::Acting {
                tokio::select! {
                    _ = acting.changed_from(acting.role()) => continue,
                    () = cancel.cancelled() => break,
                }
            }
            let term = cancel.child_token();
            let running = self.term(term.clone());
            tokio::pin!(running);
            tokio::select! {
                _ = acting.changed_from(Role::Acting) => {
                    term.cancel();
                    running.await;
                }
                () = &mut running => {}
            }
        }
        if let Err(e) = elector.await {
            warn!(error = %e, "the lease's task failed");
        }
    }

    /// The control loops and a new autoscaler, until `cancel`.
    async fn term(&self, cancel: CancellationToken) {
        let (handle, telemetry, settings) = self.autoscale.clone();
        let mut tasks = JoinSet::new();
        for worker in self.loops.start(&cancel) {
            tasks.spawn(worker);
        }
        tasks.spawn(Autoscaler::new(handle, telemetry, settings).run(cancel));
        join_all_of(&mut tasks).await;
    }
}

/// Serves until `shutdown` resolves (`false`) or a successor takes the
/// sockets and acting over (`true`). A successor that asks but does not
/// take the sockets leaves this process serving.
async fn until_stopped(
    shutdown: impl Future<Output = ()>,
    control: Option<&Control>,
    (sockets, events): (&Sockets, &EventHub),
    phases: &Phases,
    acting: &ActingTasks,
    service: &Replicator,
) -> bool {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return false,
            successor = successor_of(control) => match successor.send(sockets, events.last_id()).await {
                Ok(()) => {
                    hand_over(successor, phases, acting, service).await;
                    return true;
                }
                Err(e) => warn!(error = %e, "a successor asked but did not take the sockets; serving on"),
            },
        }
    }
}

/// The next successor to ask on the control socket; never, without one.
async fn successor_of(control: Option<&Control>) -> Successor {
    match control.map(Control::successor) {
        Some(asked) => match asked.await {
            Ok(successor) => successor,
            Err(e) => {
                warn!(error = %e, "the control socket stopped answering: no takeover possible");
                std::future::pending().await
            }
        },
        None => std::future::pending().await,
    }
}

/// Once a successor has the sockets: stops accepting, stops acting, and
/// tells it so. What is left (requests in flight, spliced connections)
/// ends as on any shutdown.
async fn hand_over(successor: Successor, phases: &Phases, acting: &ActingTasks, service: &Replicator) {
    info!("sockets handed over; no longer accepting");
    phases.stop_accepting();
    acting.stop().await;
    service.acting().release().await;
    successor.released();
    info!("acting handed over");
}

/// Inherited sockets no front will claim (fronts are off): closed.
fn close_unclaimed(sockets: &Sockets) {
    for name in sockets.close_unclaimed() {
        info!(socket = %name, "inherited socket closed: nothing listens there now");
    }
}

/// Lets spliced front connections run to their end, up to `grace`.
async fn wait_for_front_connections(connections: &TaskTracker, grace: Duration) {
    connections.close();
    if tokio::time::timeout(grace, connections.wait()).await.is_err() {
        warn!("shutdown grace period over; closing the remaining front connections");
    }
}

/// One look at the engine before answering anything, so the first requests see the groups.
async fn first_look(informer: &Informer, store: &crate::inventory::Store) {
    if let Err(e) = informer.resync().await {
        warn!(error = %e, "cannot list the engine yet; will keep trying");
        informer.unavailable(e);
    } else if let Some(engine) = store.engine() {
        info!(engine = %engine.kind, version = %engine.version, api = %engine.api_version, swarm = ?engine.swarm, "engine");
    }
}

/// The admin listener, the wake listener when there is one, and the API,
/// until `serving` is cancelled.
fn spawn_listeners(
    listeners: Listeners,
    config: &Config,
    service: Replicator,
    autoscale: Arc<AutoscaleHandle>,
    serving: &CancellationToken,
) -> JoinSet<()> {
    let mut tasks = JoinSet::new();
    let admin_router = admin::router(AdminState {
        service: service.clone(),
        autoscale: autoscale.clone(),
        unbound: config.unbound,
        tls: Some(config.tls.clone()),
        actions: config.dashboard_actions.clone(),
    });
    let admin_options = ServerOptions { max_body_bytes: admin::MAX_BODY, ..config.server.clone() };
    tasks.spawn(admin::serve(listeners.admin, admin_router, admin_options, serving.clone().cancelled_owned()));
    if let Some(wake) = listeners.wake {
        let router = crate::http::wake::router(service.clone(), config.wake.clone());
        // A held request's body may be of any size, and is read only once its
        // group is awake: it has the wait and then the body timeout to arrive.
        let body_timeout = config.server.body_timeout + config.wake.timeout;
        let options = ServerOptions { max_body_bytes: usize::MAX, body_timeout, h2c: true, ..config.server.clone() };
        let done = serving.clone().cancelled_owned();
        tasks.spawn(crate::http::listener::serve(wake, None, router, options, done));
    }
    let rate_limit = config.rate_limit.map(|n| Arc::new(RateLimiter::new(n)));
    let alerts = api::AlertReceiver::new(&config.alert_group_label);
    let forwarder = config.forwarder.clone();
    let app = api::router(AppState { service, autoscale, rate_limit, alerts, unbound: config.unbound, forwarder });
    let (tls, options, telemetry) = (config.tls.clone(), config.server.clone(), config.telemetry.clone());
    tasks.spawn(api::serve(listeners.api, tls, app, options, telemetry, serving.clone().cancelled_owned()));
    tasks
}

/// Waits for every task of `tasks`, logging the ones that failed.
async fn join_all_of(tasks: &mut JoinSet<()>) {
    while let Some(done) = tasks.join_next().await {
        if let Err(e) = done {
            warn!(error = %e, "a task failed during shutdown");
        }
    }
}
