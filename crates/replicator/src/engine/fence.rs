//! The last guard of "exactly one acts": every call that changes the world
//! goes through a [`Fence`], which lets it out only while this replicator's
//! lease holds, by its own monotonic clock. A leader frozen (SIGSTOP) in the
//! middle of a command, or cut off from the lease's store, resumes with its
//! fence shut: the calls it was about to make are refused here, never sent.
//! Reads always pass: a follower serves from its own inventory.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures_util::stream::BoxStream;
use tokio::time::Instant;

use super::{Engine, EngineError, EngineResult, ErrorKind, Op};
use crate::model::{
    ApiObject, ContainerDetails, ContainerEvent, ContainerSummary, CreateRequest, EngineInfo, ListQuery,
    NetworkAttachment, NodeSummary, ServiceDetails, StatsSample, TaskSummary,
};

/// Until when this replicator may change the world.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gate {
    /// No lease: one replicator, always free to act.
    Open,
    /// Holding the lease: free until this moment.
    Until(Instant),
    /// Another acts.
    Shut,
}

/// Whether calls that change the world may leave; clones share it.
#[derive(Debug, Clone)]
pub struct Fence(Arc<Mutex<Gate>>);

impl Default for Fence {
    /// Open: a replicator without a lease.
    fn default() -> Self {
        Self(Arc::new(Mutex::new(Gate::Open)))
    }
}

impl Fence {
    /// Shut until [`Self::open_until`]: a replicator that must win a lease first.
    pub fn shut() -> Self {
        Self(Arc::new(Mutex::new(Gate::Shut)))
    }

    /// Calls may leave until `deadline` (a renewal moves it on).
    pub fn open_until(&self, deadline: Instant) {
        *self.0.lock().expect("fence") = Gate::Until(deadline);
    }

    /// No call leaves from now on.
    pub fn close(&self) {
        *self.0.lock().expect("fence") = Gate::Shut;
    }

    /// Whether a call may leave now.
    pub fn is_open(&self) -> bool {
        match *self.0.lock().expect("fence") {
            Gate::Open => true,
            Gate::Until(deadline) => Instant::now() < deadline,
            Gate::Shut => false,
        }
    }

    /// `Ok` while open; the refusal of `op` on `object` otherwise.
    fn pass(&self, op: Op, object: &str) -> EngineResult<()> {
        match self.is_open() {
            true => Ok(()),
            false => Err(EngineError::new(
                op,
                object,
                ErrorKind::Fenced,
                "not sent: this replicator does not hold the lease",
            )),
        }
    }
}

/// An engine whose calls that change the world pass a [`Fence`] first.
pub struct FencedEngine {
    inner: Arc<dyn Engine>,
    fence: Fence,
}

impl FencedEngine {
    /// `inner` behind `fence`.
    pub fn new(inner: Arc<dyn Engine>, fence: Fence) -> Self {
        Self { inner, fence }
    }
}

#[async_trait]
impl Engine for FencedEngine {
    async fn ping(&self) -> EngineResult<()> {
        self.inner.ping().await
    }
    async fn info(&self) -> EngineResult<EngineInfo> {
        self.inner.info().await
    }
    async fn inspect_container(&self, id: &str) -> EngineResult<ContainerDetails> {
        self.inner.inspect_container(id).await
    }
    async fn image_id(&self, reference: &str) -> EngineResult<Option<String>> {
        self.inner.image_id(reference).await
    }
    async fn list_containers(&self, query: &ListQuery) -> EngineResult<Vec<ContainerSummary>> {
        self.inner.list_containers(query).await
    }
    async fn create_container(&self, request: &CreateRequest) -> EngineResult<String> {
        self.fence.pass(Op::CreateContainer, &request.name)?;
        self.inner.create_container(request).await
    }
    async fn connect_network(&self, container: &str, attachment: &NetworkAttachment) -> EngineResult<()> {
        self.fence.pass(Op::ConnectNetwork, container)?;
        self.inner.connect_network(container, attachment).await
    }
    async fn start_container(&self, id: &str) -> EngineResult<()> {
        self.fence.pass(Op::StartContainer, id)?;
        self.inner.start_container(id).await
    }
    async fn stop_container(&self, id: &str, timeout_secs: i32) -> EngineResult<()> {
        self.fence.pass(Op::StopContainer, id)?;
        self.inner.stop_container(id, timeout_secs).await
    }
    async fn pause_container(&self, id: &str) -> EngineResult<()> {
        self.fence.pass(Op::PauseContainer, id)?;
        self.inner.pause_container(id).await
    }
    async fn unpause_container(&self, id: &str) -> EngineResult<()> {
        self.fence.pass(Op::UnpauseContainer, id)?;
        self.inner.unpause_container(id).await
    }
    async fn remove_container(&self, id: &str) -> EngineResult<()> {
        self.fence.pass(Op::RemoveContainer, id)?;
        self.inner.remove_container(id).await
    }
    async fn inspect_service(&self, id: &str) -> EngineResult<ServiceDetails> {
        self.inner.inspect_service(id).await
    }
    async fn list_services(&self, labels: &[String]) -> EngineResult<Vec<ServiceDetails>> {
        self.inner.list_services(labels).await
    }
    async fn update_service(&self, id: &str, version: u64, spec: &ApiObject) -> EngineResult<()> {
        self.fence.pass(Op::UpdateService, id)?;
        self.inner.update_service(id, version, spec).await
    }
    async fn list_tasks(&self, service_id: Option<&str>) -> EngineResult<Vec<TaskSummary>> {
        self.inner.list_tasks(service_id).await
    }
    async fn list_nodes(&self) -> EngineResult<Vec<NodeSummary>> {
        self.inner.list_nodes().await
    }
    async fn stats(&self, id: &str) -> EngineResult<StatsSample> {
        self.inner.stats(id).await
    }
    async fn container_events(
        &self,
        since_nano: Option<i64>,
    ) -> EngineResult<BoxStream<'static, EngineResult<ContainerEvent>>> {
        self.inner.container_events(since_nano).await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::engine::fake::FakeEngine;

    #[tokio::test(start_paused = true)]
    async fn calls_that_change_the_world_leave_only_while_the_lease_holds_and_reads_always() {
        let fake = Arc::new(FakeEngine::default());
        let id = fake.add_container("web", &[]);
        let fence = Fence::shut();
        let engine = FencedEngine::new(fake.clone(), fence.clone());
        let e = engine.stop_container(&id, 1).await.unwrap_err();
        assert_eq!((e.op, e.kind), (Op::StopContainer, ErrorKind::Fenced), "{e}");
        assert!(engine.inspect_container(&id).await.is_ok(), "a read passes a shut fence");

        fence.open_until(Instant::now() + Duration::from_secs(3));
        engine.pause_container(&id).await.unwrap();
        tokio::time::advance(Duration::from_secs(3)).await;
        // Frozen past its deadline: whatever it was doing, nothing leaves.
        let e = engine.unpause_container(&id).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Fenced);
        assert_eq!(
            (fake.calls(Op::PauseContainer), fake.calls(Op::UnpauseContainer), fake.calls(Op::StopContainer)),
            (1, 0, 0)
        );
        assert!(Fence::default().is_open(), "no lease: always open");
    }
}
