//! An in-process engine for unit tests: it owns no containers, counts the
//! calls made to it, and answers every lookup with "not found".

use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use futures_util::stream::BoxStream;

use super::{Engine, EngineError, EngineResult};
use crate::model::{
    ApiObject, ContainerDetails, ContainerEvent, ContainerSummary, CreateRequest, ListQuery, NetworkAttachment,
    ServiceDetails, StatsSample, TaskSummary,
};

#[derive(Default)]
pub struct EmptyEngine {
    calls: AtomicUsize,
}

impl EmptyEngine {
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn call<T>(&self, answer: EngineResult<T>) -> EngineResult<T> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        answer
    }
}

fn missing<T>() -> EngineResult<T> {
    Err(EngineError::NotFound("no such object".into()))
}

#[async_trait]
impl Engine for EmptyEngine {
    async fn ping(&self) -> EngineResult<()> {
        self.call(Ok(()))
    }
    async fn inspect_container(&self, _: &str) -> EngineResult<ContainerDetails> {
        self.call(missing())
    }
    async fn image_id(&self, _: &str) -> EngineResult<Option<String>> {
        self.call(Ok(None))
    }
    async fn list_containers(&self, _: &ListQuery) -> EngineResult<Vec<ContainerSummary>> {
        self.call(Ok(Vec::new()))
    }
    async fn create_container(&self, _: &CreateRequest) -> EngineResult<String> {
        self.call(missing())
    }
    async fn connect_network(&self, _: &str, _: &NetworkAttachment) -> EngineResult<()> {
        self.call(missing())
    }
    async fn start_container(&self, _: &str) -> EngineResult<()> {
        self.call(missing())
    }
    async fn stop_container(&self, _: &str, _: i32) -> EngineResult<()> {
        self.call(missing())
    }
    async fn remove_container(&self, _: &str) -> EngineResult<()> {
        self.call(missing())
    }
    async fn inspect_service(&self, _: &str) -> EngineResult<ServiceDetails> {
        self.call(missing())
    }
    async fn list_services(&self, _: &[String]) -> EngineResult<Vec<ServiceDetails>> {
        self.call(Ok(Vec::new()))
    }
    async fn update_service(&self, _: &str, _: u64, _: &ApiObject) -> EngineResult<()> {
        self.call(missing())
    }
    async fn list_tasks(&self, _: &str) -> EngineResult<Vec<TaskSummary>> {
        self.call(Ok(Vec::new()))
    }
    async fn stats(&self, _: &str) -> EngineResult<StatsSample> {
        self.call(missing())
    }
    async fn container_events(&self, _: Option<i64>) -> EngineResult<BoxStream<'static, EngineResult<ContainerEvent>>> {
        self.call(Ok(Box::pin(futures_util::stream::empty())))
    }
}
