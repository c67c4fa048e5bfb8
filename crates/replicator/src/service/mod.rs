//! The use cases: replicate a container, list and scale groups. Knows neither
//! HTTP nor bollard: callers pass validated input, the engine is a port.

mod backends;
mod groups;
mod metrics;
mod replicate;
mod reservation;
mod scale;
mod swarm;
mod upkeep;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::autoscale::store::{Board, MetricStore};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::labels::Selector;
use crate::telemetry::Telemetry;

pub use groups::{GroupView, MemberView};
pub use metrics::MetricSample;
pub use replicate::{Replica, Replication, MAX_COUNT};
use reservation::GroupSlots;

/// Policy switches from the command line.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Replicate containers without `replicator.enable=true` (the original tool's behaviour).
    pub allow_all: bool,
    /// Group size limit when the original carries no `replicator.max`.
    pub default_max: u32,
    /// Keep fixed host ports on clones instead of publishing ephemeral ones.
    pub keep_host_ports: bool,
    /// How long a replica may take to stop before it is killed.
    pub stop_timeout: Duration,
    /// Our own container, never replicated.
    pub self_id: Option<String>,
    /// Manage only containers and services carrying this label.
    pub selector: Option<Selector>,
    /// The autoscaler decides and reports but never applies (`serve --dry-run`).
    pub autoscale_dry_run: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            allow_all: false,
            default_max: 10,
            keep_host_ports: false,
            stop_timeout: Duration::from_secs(10),
            self_id: None,
            selector: None,
            autoscale_dry_run: false,
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
    settings: Settings,
    slots: GroupSlots,
    telemetry: Arc<Telemetry>,
    metrics: MetricStore,
    board: Board,
}

impl Replicator {
    pub fn new(engine: Arc<dyn Engine>, settings: Settings, telemetry: Arc<Telemetry>) -> Self {
        let inner = Inner {
            engine,
            settings,
            slots: GroupSlots::default(),
            telemetry,
            metrics: MetricStore::default(),
            board: Board::default(),
        };
        Self { inner: Arc::new(inner) }
    }

    pub fn telemetry(&self) -> &Telemetry {
        &self.inner.telemetry
    }

    /// Values pushed to `POST /v1/metrics`.
    pub fn metric_store(&self) -> &MetricStore {
        &self.inner.metrics
    }

    /// The autoscaler's latest evaluations, shown in the group views.
    pub fn board(&self) -> &Board {
        &self.inner.board
    }

    pub fn engine(&self) -> &dyn Engine {
        self.inner.engine.as_ref()
    }

    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// Refuses what lies outside `--selector`.
    pub(crate) fn check_selected(&self, what: &str, labels: &std::collections::BTreeMap<String, String>) -> Result<()> {
        match &self.settings().selector {
            Some(selector) if !selector.matches(labels) => {
                Err(Error::Forbidden(format!("{what} is not managed by this replicator (its selector is {selector})")))
            }
            _ => Ok(()),
        }
    }

    /// The engine label filters for "managed by us", plus `label`.
    pub(crate) fn managed_filter(&self, label: &str) -> Vec<String> {
        let mut filters = vec![label.to_owned()];
        filters.extend(self.settings().selector.as_ref().map(Selector::filter));
        filters
    }
}

/// Runs `work` in its own task: a caller that goes away (a client
/// disconnecting) cannot stop it half-way between two engine calls.
async fn detached<T: Send + 'static>(work: impl Future<Output = Result<T>> + Send + 'static) -> Result<T> {
    tokio::spawn(work).await.map_err(|e| Error::Internal(format!("task failed: {e}")))?
}
