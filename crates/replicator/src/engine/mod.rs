//! The engine port: the calls replicator makes to a Docker engine, in the
//! project's own types. [`docker::DockerEngine`] is the only implementation
//! that talks to a real engine and the only code that knows bollard.

pub mod connect;
pub mod docker;
#[cfg(test)]
pub mod fake;

use async_trait::async_trait;
use futures_util::stream::BoxStream;

use crate::model::{
    ApiObject, ContainerDetails, ContainerEvent, ContainerSummary, CreateRequest, ListQuery, NetworkAttachment,
    ServiceDetails, StatsSample, TaskSummary,
};

pub use connect::{EngineEndpoint, EngineSettings};
pub use docker::DockerEngine;

/// How long the engine's container listing may lag behind its events (it
/// announces `die` while still listing the container as running): whoever
/// reacts to an event looks again after this.
pub const LISTING_LAG: std::time::Duration = std::time::Duration::from_millis(500);

/// Why an engine call failed, in the terms the service reasons about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// The object does not exist (HTTP 404 from the engine).
    #[error("{0}")]
    NotFound(String),
    /// A name or state conflict (HTTP 409 from the engine).
    #[error("{0}")]
    Conflict(String),
    /// The engine answered but refused the call; its message is kept for the user.
    #[error("{0}")]
    Rejected(String),
    /// The engine could not be reached at all.
    #[error("{0}")]
    Unavailable(String),
    /// The engine did not answer within the configured timeout.
    #[error("engine call timed out after {0:?}")]
    Timeout(std::time::Duration),
}

impl EngineError {
    /// A short name for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NotFound(_) => "not_found",
            Self::Conflict(_) => "conflict",
            Self::Rejected(_) => "rejected",
            Self::Unavailable(_) => "unavailable",
            Self::Timeout(_) => "timeout",
        }
    }

    /// Whether the failure says nothing about the request, only about the engine's reachability.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_) | Self::Timeout(_))
    }
}

pub type EngineResult<T> = Result<T, EngineError>;

/// The Engine API calls replicator needs.
#[async_trait]
pub trait Engine: Send + Sync + 'static {
    async fn ping(&self) -> EngineResult<()>;
    async fn inspect_container(&self, id: &str) -> EngineResult<ContainerDetails>;
    /// The id a tag or image reference resolves to now, `None` if it resolves to nothing.
    async fn image_id(&self, reference: &str) -> EngineResult<Option<String>>;
    async fn list_containers(&self, query: &ListQuery) -> EngineResult<Vec<ContainerSummary>>;
    /// Creates the container and returns its id.
    async fn create_container(&self, request: &CreateRequest) -> EngineResult<String>;
    async fn connect_network(&self, container: &str, attachment: &NetworkAttachment) -> EngineResult<()>;
    async fn start_container(&self, id: &str) -> EngineResult<()>;
    /// Stops with the container's own stop signal, killing after `timeout_secs`.
    async fn stop_container(&self, id: &str, timeout_secs: i32) -> EngineResult<()>;
    /// Removes the container (forcefully) and its anonymous volumes.
    async fn remove_container(&self, id: &str) -> EngineResult<()>;
    async fn inspect_service(&self, id: &str) -> EngineResult<ServiceDetails>;
    /// Services carrying all of `labels`; none when the engine is not a Swarm manager.
    async fn list_services(&self, labels: &[String]) -> EngineResult<Vec<ServiceDetails>>;
    /// Replaces the service's spec; `Conflict` when `version` is stale.
    async fn update_service(&self, id: &str, version: u64, spec: &ApiObject) -> EngineResult<()>;
    /// Tasks the orchestrator wants running for the service.
    async fn list_tasks(&self, service_id: &str) -> EngineResult<Vec<TaskSummary>>;
    /// One reading of the container's counters (the engine takes about a second).
    async fn stats(&self, id: &str) -> EngineResult<StatsSample>;
    /// Container events from `since_nano` (unix nanoseconds) on; ends when the connection does.
    async fn container_events(
        &self,
        since_nano: Option<i64>,
    ) -> EngineResult<BoxStream<'static, EngineResult<ContainerEvent>>>;
}
