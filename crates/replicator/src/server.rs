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
use tracing::{info, warn};

use crate::autoscale::{AutoscaleHandle, AutoscaleSettings, Autoscaler};
use crate::base::telemetry::Telemetry;
use crate::engine::Engine;
use crate::http::admin::{self, AdminState};
use crate::http::api::{self, AppState, RateLimiter, ServerOptions};
use crate::inventory::{Informer, Inventory, Scope};
use crate::rules::access::UnboundPolicy;
use crate::service::events::EventHub;
use crate::service::{Replicator, Settings};
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
}

/// Serves until `shutdown` resolves, then stops every task and waits for it.
pub async fn run(listeners: Listeners, config: Config, shutdown: impl Future<Output = ()>) {
    let Inventory { writer, store, intents } = Inventory::new(config.scope.clone());
    let informer = Informer::new(config.engine.clone(), writer, config.resync).with_swarm_poll(config.swarm_poll);
    first_look(&informer, &store).await;
    if let Some(warning) = config.unbound.warning() {
        warn!("{warning}");
    }
    let events = Arc::new(EventHub::default());
    let service = Replicator::new(
        config.engine.clone(),
        (store.clone(), intents),
        events.clone(),
        config.settings.clone(),
        config.telemetry.clone(),
    );
    let autoscale =
        AutoscaleHandle::new(Arc::new(service.clone()), events.clone(), config.dry_run, config.autoscale.metric_ttl);
    let autoscaler = Autoscaler::new(autoscale.clone(), config.telemetry.clone(), config.autoscale.clone());

    // Stopped in this order, each phase awaited: the autoscaler (its changes
    // finish while balancers still follow), then the listeners (requests in
    // flight finish while the inventory still follows the engine), then the
    // inventory's own tasks.
    let (autoscaling, serving, background) =
        (CancellationToken::new(), CancellationToken::new(), CancellationToken::new());
    let mut background_tasks = JoinSet::new();
    background_tasks.spawn(informer.run(background.clone()));
    background_tasks.spawn(events.clone().follow(store, background.clone()));
    spawn_control_loops(&mut background_tasks, &service, config.front, &background);
    let autoscaler = tokio::spawn(autoscaler.run(autoscaling.clone()));
    let mut listeners_tasks = spawn_listeners(listeners, &config, service, autoscale, &serving);

    shutdown.await;
    autoscaling.cancel();
    if let Err(e) = autoscaler.await {
        warn!(error = %e, "the autoscaler failed during shutdown");
    }
    // Event streams end first: they would hold the listeners' graceful drain open.
    events.close();
    serving.cancel();
    join_all_of(&mut listeners_tasks).await;
    background.cancel();
    join_all_of(&mut background_tasks).await;
    info!("stopped");
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

/// The service's control loops (and the fronts), until `cancel`.
fn spawn_control_loops(
    tasks: &mut JoinSet<()>,
    service: &Replicator,
    front: Option<crate::front::FrontSettings>,
    cancel: &CancellationToken,
) {
    for worker in service.workers(cancel) {
        tasks.spawn(worker);
    }
    if let Some(front) = front {
        tasks.spawn(crate::front::run(service.clone(), front, cancel.clone()));
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
        let router = crate::http::wake::router(service.clone(), config.wake);
        let options = ServerOptions { max_body_bytes: crate::http::wake::MAX_HELD_BODY, ..config.server.clone() };
        let done = serving.clone().cancelled_owned();
        tasks.spawn(crate::http::listener::serve(wake, None, router, options, done));
    }
    let rate_limit = config.rate_limit.map(|n| Arc::new(RateLimiter::new(n)));
    let alerts = api::AlertReceiver::new(&config.alert_group_label);
    let app = api::router(AppState { service, autoscale, rate_limit, alerts, unbound: config.unbound });
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
