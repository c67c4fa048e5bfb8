//! The engine port: the calls replicator makes to a Docker-compatible engine,
//! in the project's own types. [`docker::DockerEngine`] is the only
//! implementation that talks to a real engine and the only code that knows
//! bollard; [`fake::FakeEngine`] stands in for it in unit tests.

pub mod connect;
pub mod docker;
mod failure;
#[cfg(test)]
pub mod fake;
mod fence;
pub mod lease;
pub mod normalize;
mod transport;

use async_trait::async_trait;
use futures_util::stream::BoxStream;

use crate::model::{
    ApiObject, ContainerDetails, ContainerEvent, ContainerSummary, CreateRequest, EngineInfo, ListQuery,
    NetworkAttachment, NodeSummary, ServiceDetails, StatsSample, TaskSummary,
};

pub use connect::{EngineEndpoint, EngineSettings};
pub use docker::DockerEngine;
pub use failure::{EngineError, ErrorKind, Op};
pub use fence::{Fence, FencedEngine};
pub use lease::{FileLease, LeaseRecord, LeaseStore, Versioned};

/// The result of one engine call.
pub type EngineResult<T> = Result<T, EngineError>;

/// The Engine API calls replicator needs.
#[async_trait]
pub trait Engine: Send + Sync + 'static {
    /// Whether the engine answers at all (health checks).
    async fn ping(&self) -> EngineResult<()>;
    /// What the engine is and can do: kind, version, Swarm role.
    async fn info(&self) -> EngineResult<EngineInfo>;
    /// The container as the engine reports it, every field kept.
    async fn inspect_container(&self, id: &str) -> EngineResult<ContainerDetails>;
    /// The id a tag or image reference resolves to now, `None` if it resolves to nothing.
    async fn image_id(&self, reference: &str) -> EngineResult<Option<String>>;
    /// Containers matching `query` (a full listing when the query is empty).
    async fn list_containers(&self, query: &ListQuery) -> EngineResult<Vec<ContainerSummary>>;
    /// Creates the container and returns its id.
    async fn create_container(&self, request: &CreateRequest) -> EngineResult<String>;
    /// Attaches a created container to one more network before it starts.
    async fn connect_network(&self, container: &str, attachment: &NetworkAttachment) -> EngineResult<()>;
    /// Starts a created container.
    async fn start_container(&self, id: &str) -> EngineResult<()>;
    /// Stops with the container's own stop signal, killing after `timeout_secs`.
    async fn stop_container(&self, id: &str, timeout_secs: i32) -> EngineResult<()>;
    /// Freezes the container's processes (it keeps its memory).
    async fn pause_container(&self, id: &str) -> EngineResult<()>;
    /// Thaws a paused container.
    async fn unpause_container(&self, id: &str) -> EngineResult<()>;
    /// Removes the container (forcefully) and its anonymous volumes.
    async fn remove_container(&self, id: &str) -> EngineResult<()>;
    /// One Swarm service, with the version an update must quote.
    async fn inspect_service(&self, id: &str) -> EngineResult<ServiceDetails>;
    /// Services carrying all of `labels`. Call only on a Swarm manager.
    async fn list_services(&self, labels: &[String]) -> EngineResult<Vec<ServiceDetails>>;
    /// Replaces the service's spec; `Conflict` when `version` is stale.
    async fn update_service(&self, id: &str, version: u64, spec: &ApiObject) -> EngineResult<()>;
    /// Tasks the orchestrator wants running, of one service or (`None`) of all.
    async fn list_tasks(&self, service_id: Option<&str>) -> EngineResult<Vec<TaskSummary>>;
    /// The swarm's nodes. Call only on a Swarm manager.
    async fn list_nodes(&self) -> EngineResult<Vec<NodeSummary>>;
    /// One reading of the container's counters (the engine takes about a second).
    async fn stats(&self, id: &str) -> EngineResult<StatsSample>;
    /// Container events from `since_nano` (unix nanoseconds) on; ends when the connection does.
    async fn container_events(
        &self,
        since_nano: Option<i64>,
    ) -> EngineResult<BoxStream<'static, EngineResult<ContainerEvent>>>;
}
