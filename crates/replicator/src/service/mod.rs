//! The use cases: replicate a container, list and scale groups. Knows neither
//! HTTP nor bollard: callers pass validated input, the engine is a port.

mod groups;
mod replicate;
mod reservation;
mod scale;
mod swarm;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::engine::Engine;
use crate::error::{Error, Result};

pub use groups::{GroupView, MemberView};
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
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            allow_all: false,
            default_max: 10,
            keep_host_ports: false,
            stop_timeout: Duration::from_secs(10),
            self_id: None,
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
}

impl Replicator {
    pub fn new(engine: Arc<dyn Engine>, settings: Settings) -> Self {
        Self {
            inner: Arc::new(Inner {
                engine,
                settings,
                slots: GroupSlots::default(),
            }),
        }
    }

    pub fn engine(&self) -> &dyn Engine {
        self.inner.engine.as_ref()
    }

    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }
}

/// Runs `work` in its own task: a caller that goes away (a client
/// disconnecting) cannot stop it half-way between two engine calls.
async fn detached<T: Send + 'static>(work: impl Future<Output = Result<T>> + Send + 'static) -> Result<T> {
    tokio::spawn(work)
        .await
        .map_err(|e| Error::Internal(format!("task failed: {e}")))?
}
