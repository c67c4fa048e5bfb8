//! The whole server as a library call, in the style of mini-redis:
//! [`run`] takes bound listeners and a shutdown future, starts every
//! background task under one cancellation token and one `JoinSet`, and on
//! shutdown stops them all and waits for each (requests in flight finish,
//! scale changes the autoscaler started finish).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::admin::{self, AdminState};
use crate::api::{self, AppState, RateLimiter, ServerOptions};
use crate::autoscale::{AutoscaleHandle, AutoscaleSettings, Autoscaler};
use crate::engine::Engine;
use crate::events::EventHub;
use crate::inventory::{Informer, Inventory, Scope};
use crate::service::{Replicator, Settings};
use crate::telemetry::Telemetry;

/// The two listeners, bound by the caller (port 0 in tests).
pub struct Listeners {
    /// The mutual-TLS API.
    pub api: TcpListener,
    /// Plain HTTP: health, metrics, dashboard.
    pub admin: TcpListener,
}

/// Everything `run` needs besides the listeners.
pub struct Config {
    /// The API's TLS configuration (client certificates required).
    pub tls: Arc<ServerConfig>,
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
    /// The API listener's limits.
    pub server: ServerOptions,
    /// `--rate-limit`, per client address.
    pub rate_limit: Option<f64>,
    /// Where every component counts.
    pub telemetry: Arc<Telemetry>,
}

/// Serves until `shutdown` resolves, then stops every task and waits for it.
pub async fn run(listeners: Listeners, config: Config, shutdown: impl Future<Output = ()>) {
    let inventory = Inventory::new(config.scope.clone());
    let informer = Informer::new(config.engine.clone(), inventory.clone(), config.resync);
    // One look before answering anything, so the first requests see the groups.
    if let Err(e) = informer.resync().await {
        warn!(error = %e, "cannot list the engine yet; will keep trying");
        inventory.set_unavailable(e);
    } else if let Some(engine) = inventory.engine() {
        info!(engine = %engine.kind, version = %engine.version, api = %engine.api_version, swarm = ?engine.swarm, "engine");
    }
    let events = Arc::new(EventHub::default());
    let service = Replicator::new(
        config.engine.clone(),
        inventory.clone(),
        events.clone(),
        config.settings,
        config.telemetry.clone(),
    );
    let autoscale = AutoscaleHandle::new(Arc::new(service.clone()), events.clone(), config.dry_run);
    let autoscaler = Autoscaler::new(autoscale.clone(), config.telemetry.clone(), config.autoscale);

    let cancel = CancellationToken::new();
    let mut tasks = JoinSet::new();
    tasks.spawn(informer.run(cancel.clone()));
    tasks.spawn(events.clone().follow(inventory, cancel.clone()));
    tasks.spawn(service.clone().keep_reconciling(cancel.clone()));
    tasks.spawn(autoscaler.run(cancel.clone()));
    let admin_router = admin::router(AdminState { service: service.clone(), autoscale: autoscale.clone() });
    let admin_options = ServerOptions { max_body_bytes: admin::MAX_BODY, ..config.server.clone() };
    tasks.spawn(admin::serve(listeners.admin, admin_router, admin_options, cancel.clone().cancelled_owned()));
    let rate_limit = config.rate_limit.map(|n| Arc::new(RateLimiter::new(n)));
    let app = api::router(AppState { service, autoscale, rate_limit });
    let telemetry = config.telemetry.clone();
    tasks.spawn(api::serve(listeners.api, config.tls, app, config.server, telemetry, cancel.clone().cancelled_owned()));

    shutdown.await;
    cancel.cancel();
    while let Some(done) = tasks.join_next().await {
        if let Err(e) = done {
            warn!(error = %e, "a task failed during shutdown");
        }
    }
    info!("stopped");
}
