//! The bollard adapter: the only code that knows bollard's types.
//!
//! Inspect results are turned into Engine API JSON (bollard serializes its
//! models in the API's own field names), so the planner sees every field the
//! engine reported; create bodies go back through the same serde.

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bollard::errors::Error as BollardError;
use bollard::models::{ContainerCreateBody, EndpointSettings, NetworkConnectRequest, ServiceSpec};
use bollard::query_parameters::{
    CreateContainerOptions, EventsOptions, ListContainersOptions, ListServicesOptions, ListTasksOptions,
    RemoveContainerOptions, StatsOptions, StopContainerOptions, UpdateServiceOptions,
};
use bollard::{BollardRequest, Docker, API_DEFAULT_VERSION};
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tokio::sync::RwLock;

use super::connect::{EngineEndpoint, EngineSettings};
use super::{Engine, EngineError, EngineResult};
use crate::model::{
    labels_of, ApiObject, ContainerDetails, ContainerEvent, ContainerSummary, CreateRequest, Endpoint, ListQuery,
    NetworkAttachment, RunState, ServiceDetails, StatsSample, TaskSummary,
};
use crate::telemetry::Telemetry;
use crate::tls::{self, TlsError, TlsFiles};

/// A Docker engine reached through bollard.
pub struct DockerEngine {
    settings: EngineSettings,
    telemetry: Arc<Telemetry>,
    /// Connected lazily: a unix socket that does not exist yet (engine down at
    /// start) must not stop replicator from starting.
    client: RwLock<Option<Docker>>,
}

impl DockerEngine {
    /// Validates the TLS files now (a wrong CA should stop `serve` with the file
    /// named) but connects on first use.
    pub fn new(settings: EngineSettings, telemetry: Arc<Telemetry>) -> Result<Self, TlsError> {
        let client = match &settings.endpoint {
            EngineEndpoint::Tcp { addr, tls: Some(dir) } => Some(tls_client(addr, dir, &settings)?),
            _ => None,
        };
        Ok(Self { settings, telemetry, client: RwLock::new(client) })
    }

    pub fn settings(&self) -> &EngineSettings {
        &self.settings
    }

    async fn client(&self) -> EngineResult<Docker> {
        if let Some(docker) = self.client.read().await.as_ref() {
            return Ok(docker.clone());
        }
        let mut slot = self.client.write().await;
        if let Some(docker) = slot.as_ref() {
            return Ok(docker.clone());
        }
        let secs = self.settings.timeout.as_secs().max(1);
        let docker = match &self.settings.endpoint {
            EngineEndpoint::Unix(path) => connect_unix(path, secs)?,
            EngineEndpoint::Tcp { addr, .. } => {
                Docker::connect_with_http(&format!("tcp://{addr}"), secs, API_DEFAULT_VERSION).map_err(map_error)?
            }
        };
        *slot = Some(docker.clone());
        Ok(docker)
    }

    /// Runs one call with the engine timeout (`extra` for calls that wait on purpose, like stop).
    async fn call<T, F, Fut>(&self, extra: Duration, f: F) -> EngineResult<T>
    where
        F: FnOnce(Docker) -> Fut,
        Fut: Future<Output = Result<T, BollardError>>,
    {
        let limit = self.settings.timeout + extra;
        let result = match self.client().await {
            Ok(docker) => match tokio::time::timeout(limit, f(docker)).await {
                Ok(result) => result.map_err(map_error),
                Err(_) => Err(EngineError::Timeout(limit)),
            },
            Err(e) => Err(e),
        };
        if let Err(e) = &result {
            // Missing objects and name clashes are answers, not engine failures.
            if !matches!(e, EngineError::NotFound(_) | EngineError::Conflict(_)) {
                self.telemetry.engine_error(e.kind());
            }
        }
        result
    }
}

fn connect_unix(path: &Path, secs: u64) -> EngineResult<Docker> {
    if !path.exists() {
        return Err(EngineError::Unavailable(format!(
            "cannot reach the Docker engine: no socket at {}",
            path.display()
        )));
    }
    Docker::connect_with_unix(&path.to_string_lossy(), secs, API_DEFAULT_VERSION).map_err(map_error)
}

/// bollard's own TLS client also trusts the OS roots; the docker CLI trusts
/// only `ca.pem`, and so do we.
fn tls_client(addr: &str, dir: &Path, settings: &EngineSettings) -> Result<Docker, TlsError> {
    let config = tls::client_config(&TlsFiles::client_in(dir))?;
    let https = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(config).https_only().enable_http1().build();
    let client = Client::builder(TokioExecutor::new()).build(https);
    let transport = move |req: BollardRequest| {
        let response = client.request(req);
        async move { response.await.map_err(BollardError::from) }
    };
    let secs = settings.timeout.as_secs().max(1);
    Ok(Docker::connect_with_custom_transport(transport, Some(format!("https://{addr}")), secs, API_DEFAULT_VERSION)
        .expect("a custom transport needs no connection"))
}

fn map_error(e: BollardError) -> EngineError {
    match e {
        BollardError::DockerResponseServerError { status_code: 404, message } => EngineError::NotFound(message),
        BollardError::DockerResponseServerError { status_code: 409, message } => EngineError::Conflict(message),
        BollardError::DockerResponseServerError { message, .. } => EngineError::Rejected(message),
        BollardError::RequestTimeoutError => EngineError::Timeout(Duration::ZERO),
        e @ (BollardError::HyperLegacyError { .. }
        | BollardError::IOError { .. }
        | BollardError::SocketNotFoundError(_)
        | BollardError::HyperResponseError { .. }) => {
            EngineError::Unavailable(format!("cannot reach the Docker engine: {}", error_chain(&e)))
        }
        e => EngineError::Rejected(e.to_string()),
    }
}

/// hyper says "client error (Connect)"; the cause (refused, TLS...) is further down.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.ends_with(&next) {
            text = format!("{text}: {next}");
        }
        source = s.source();
    }
    text
}

fn to_json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).expect("bollard models serialize to JSON")
}

fn str_at<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or_default()
}

fn strings_at(v: &Value, key: &str) -> Vec<String> {
    serde_json::from_value(v.get(key).cloned().unwrap_or(Value::Null)).unwrap_or_default()
}

fn details_from(inspect: &Value) -> ContainerDetails {
    let object = |key: &str| inspect.get(key).and_then(Value::as_object).cloned().unwrap_or_default();
    let endpoints = inspect
        .pointer("/NetworkSettings/Networks")
        .and_then(Value::as_object)
        .map(|nets| {
            nets.iter()
                .map(|(name, ep)| {
                    let endpoint = Endpoint {
                        network_id: str_at(ep, "NetworkID").to_owned(),
                        aliases: strings_at(ep, "Aliases"),
                        links: strings_at(ep, "Links"),
                        ip_address: str_at(ep, "IPAddress").to_owned(),
                        driver_opts: serde_json::from_value(ep.get("DriverOpts").cloned().unwrap_or(Value::Null))
                            .unwrap_or_default(),
                    };
                    (name.clone(), endpoint)
                })
                .collect()
        })
        .unwrap_or_default();
    ContainerDetails {
        id: str_at(inspect, "Id").to_owned(),
        name: str_at(inspect, "Name").trim_start_matches('/').to_owned(),
        image_id: str_at(inspect, "Image").to_owned(),
        created: str_at(inspect, "Created").to_owned(),
        state: RunState::parse(inspect.pointer("/State/Status").and_then(Value::as_str).unwrap_or_default()),
        config: object("Config"),
        host_config: object("HostConfig"),
        endpoints,
        published: published_ports(inspect),
    }
}

fn published_ports(inspect: &Value) -> Vec<(String, String, u16)> {
    let Some(ports) = inspect.pointer("/NetworkSettings/Ports").and_then(Value::as_object) else {
        return Vec::new();
    };
    let mut published = Vec::new();
    for (port, bindings) in ports {
        for b in bindings.as_array().into_iter().flatten() {
            if let Ok(host_port) = str_at(b, "HostPort").parse() {
                published.push((port.clone(), str_at(b, "HostIp").to_owned(), host_port));
            }
        }
    }
    published
}

fn summary_from(c: &Value) -> ContainerSummary {
    // Legacy links add names like `/web/db`; the container's own has one slash.
    let names = strings_at(c, "Names");
    let name = names.iter().find(|n| n.matches('/').count() == 1).or(names.first());
    let config_like = serde_json::json!({ "Labels": c.get("Labels").cloned().unwrap_or(Value::Null) });
    ContainerSummary {
        id: str_at(c, "Id").to_owned(),
        name: name.map(|n| n.trim_start_matches('/').to_owned()).unwrap_or_default(),
        state: RunState::parse(str_at(c, "State")),
        labels: labels_of(config_like.as_object().expect("object literal")),
        created: c.get("Created").and_then(Value::as_i64).unwrap_or_default(),
    }
}

fn service_from(v: &Value) -> ServiceDetails {
    let spec = v.get("Spec").and_then(Value::as_object).cloned().unwrap_or_default();
    let spec_value = Value::Object(spec.clone());
    ServiceDetails {
        id: str_at(v, "ID").to_owned(),
        name: str_at(&spec_value, "Name").to_owned(),
        version: v.pointer("/Version/Index").and_then(Value::as_u64).unwrap_or_default(),
        labels: labels_of(&spec),
        replicas: spec_value.pointer("/Mode/Replicated/Replicas").and_then(Value::as_u64).or_else(|| {
            // A replicated service may omit the count, which then means 1.
            spec_value.pointer("/Mode/Replicated").map(|_| 1)
        }),
        spec,
    }
}

fn task_from(v: &Value) -> TaskSummary {
    TaskSummary {
        id: str_at(v, "ID").to_owned(),
        container_id: v
            .pointer("/Status/ContainerStatus/ContainerID")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        state: v.pointer("/Status/State").and_then(Value::as_str).unwrap_or_default().to_owned(),
        desired_state: str_at(v, "DesiredState").to_owned(),
        slot: v.get("Slot").and_then(Value::as_u64),
        created: str_at(v, "CreatedAt").to_owned(),
    }
}

fn label_filters(labels: &[String]) -> HashMap<String, Vec<String>> {
    let mut filters = HashMap::new();
    if !labels.is_empty() {
        filters.insert("label".to_owned(), labels.to_vec());
    }
    filters
}

#[async_trait]
impl Engine for DockerEngine {
    async fn ping(&self) -> EngineResult<()> {
        self.call(Duration::ZERO, |d| async move { d.ping().await.map(drop) }).await
    }

    async fn inspect_container(&self, id: &str) -> EngineResult<ContainerDetails> {
        let inspect = self.call(Duration::ZERO, |d| async move { d.inspect_container(id, None).await }).await?;
        Ok(details_from(&to_json(&inspect)))
    }

    async fn image_id(&self, reference: &str) -> EngineResult<Option<String>> {
        match self.call(Duration::ZERO, |d| async move { d.inspect_image(reference).await }).await {
            Ok(image) => Ok(image.id),
            Err(EngineError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn list_containers(&self, query: &ListQuery) -> EngineResult<Vec<ContainerSummary>> {
        let mut filters = label_filters(&query.labels);
        if let Some(name) = &query.name {
            filters.insert("name".to_owned(), vec![name.clone()]);
        }
        if let Some(id) = &query.id {
            filters.insert("id".to_owned(), vec![id.clone()]);
        }
        let options = ListContainersOptions { all: query.all, filters: Some(filters), ..Default::default() };
        let list = self.call(Duration::ZERO, |d| async move { d.list_containers(Some(options)).await }).await?;
        Ok(list.iter().map(|c| summary_from(&to_json(c))).collect())
    }

    async fn create_container(&self, request: &CreateRequest) -> EngineResult<String> {
        let body: ContainerCreateBody = serde_json::from_value(Value::Object(request.body.clone()))
            .map_err(|e| EngineError::Rejected(format!("the create request cannot be encoded: {e}")))?;
        let options = CreateContainerOptions { name: Some(request.name.clone()), ..Default::default() };
        let created =
            self.call(Duration::ZERO, |d| async move { d.create_container(Some(options), body).await }).await?;
        Ok(created.id)
    }

    async fn connect_network(&self, container: &str, a: &NetworkAttachment) -> EngineResult<()> {
        let non_empty = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
        let request = NetworkConnectRequest {
            container: container.to_owned(),
            endpoint_config: Some(EndpointSettings {
                aliases: non_empty(&a.aliases),
                links: non_empty(&a.links),
                driver_opts: (!a.driver_opts.is_empty()).then(|| a.driver_opts.clone().into_iter().collect()),
                ..Default::default()
            }),
        };
        let network = a.network.as_str();
        self.call(Duration::ZERO, |d| async move { d.connect_network(network, request).await }).await
    }

    async fn start_container(&self, id: &str) -> EngineResult<()> {
        self.call(Duration::ZERO, |d| async move { d.start_container(id, None).await }).await
    }

    async fn stop_container(&self, id: &str, timeout_secs: i32) -> EngineResult<()> {
        let options = StopContainerOptions { t: Some(timeout_secs), signal: None };
        let grace = Duration::from_secs(timeout_secs.max(0) as u64);
        self.call(grace, |d| async move { d.stop_container(id, Some(options)).await }).await
    }

    async fn remove_container(&self, id: &str) -> EngineResult<()> {
        let options = RemoveContainerOptions { force: true, v: true, ..Default::default() };
        self.call(Duration::ZERO, |d| async move { d.remove_container(id, Some(options)).await }).await
    }

    async fn inspect_service(&self, id: &str) -> EngineResult<ServiceDetails> {
        let service = self.call(Duration::ZERO, |d| async move { d.inspect_service(id, None).await }).await?;
        Ok(service_from(&to_json(&service)))
    }

    async fn list_services(&self, labels: &[String]) -> EngineResult<Vec<ServiceDetails>> {
        let options = ListServicesOptions { filters: Some(label_filters(labels)), ..Default::default() };
        match self.call(Duration::ZERO, |d| async move { d.list_services(Some(options)).await }).await {
            Ok(list) => Ok(list.iter().map(|s| service_from(&to_json(s))).collect()),
            Err(EngineError::Rejected(m)) if m.contains("swarm") => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    async fn update_service(&self, id: &str, version: u64, spec: &ApiObject) -> EngineResult<()> {
        let spec: ServiceSpec = serde_json::from_value(Value::Object(spec.clone()))
            .map_err(|e| EngineError::Rejected(format!("the service spec cannot be encoded: {e}")))?;
        let version =
            i32::try_from(version).map_err(|_| EngineError::Rejected("service version out of range".into()))?;
        let options = UpdateServiceOptions { version, ..Default::default() };
        let result =
            self.call(Duration::ZERO, |d| async move { d.update_service(id, spec, options, None).await }).await;
        match result {
            Ok(_) => Ok(()),
            // Swarm reports a stale version as a plain failure; it is a conflict to retry.
            Err(EngineError::Rejected(m)) if m.contains("out of sequence") => Err(EngineError::Conflict(m)),
            Err(e) => Err(e),
        }
    }

    async fn list_tasks(&self, service_id: &str) -> EngineResult<Vec<TaskSummary>> {
        let filters = HashMap::from([
            ("service".to_owned(), vec![service_id.to_owned()]),
            ("desired-state".to_owned(), vec!["running".to_owned()]),
        ]);
        let options = ListTasksOptions { filters: Some(filters) };
        let list = self.call(Duration::ZERO, |d| async move { d.list_tasks(Some(options)).await }).await?;
        Ok(list.iter().map(|t| task_from(&to_json(t))).collect())
    }

    async fn stats(&self, id: &str) -> EngineResult<StatsSample> {
        let options = StatsOptions { stream: false, one_shot: false };
        let first = self
            .call(Duration::ZERO, |d| async move {
                let mut stream = Box::pin(d.stats(id, Some(options)));
                stream.next().await.unwrap_or(Err(BollardError::DockerStreamError { error: "no stats".into() }))
            })
            .await?;
        Ok(stats_from(&to_json(&first)))
    }

    async fn container_events(
        &self,
        since_nano: Option<i64>,
    ) -> EngineResult<BoxStream<'static, EngineResult<ContainerEvent>>> {
        let docker = self.client().await?;
        let since = since_nano.map(|n| format!("{}.{:09}", n / 1_000_000_000, n % 1_000_000_000));
        let filters = HashMap::from([("type".to_owned(), vec!["container".to_owned()])]);
        let options = EventsOptions { since, until: None, filters: Some(filters) };
        let stream = docker.events(Some(options)).map(|item| {
            let message = item.map_err(map_error)?;
            let v = to_json(&message);
            Ok(ContainerEvent {
                action: str_at(&v, "Action").to_owned(),
                id: v.pointer("/Actor/ID").and_then(Value::as_str).unwrap_or_default().to_owned(),
                attributes: serde_json::from_value(v.pointer("/Actor/Attributes").cloned().unwrap_or(Value::Null))
                    .unwrap_or_default(),
                time_nano: v.get("timeNano").and_then(Value::as_i64).unwrap_or_default(),
            })
        });
        Ok(Box::pin(stream))
    }
}

fn stats_from(v: &Value) -> StatsSample {
    let num = |path: &str| v.pointer(path).and_then(Value::as_u64).unwrap_or_default();
    let percpu = v.pointer("/cpu_stats/cpu_usage/percpu_usage").and_then(Value::as_array).map(Vec::len).unwrap_or(0);
    let online = match num("/cpu_stats/online_cpus") {
        0 => percpu as u32,
        n => n as u32,
    };
    // cgroup v1 reports total_inactive_file, v2 inactive_file.
    let inactive = match num("/memory_stats/stats/total_inactive_file") {
        0 => num("/memory_stats/stats/inactive_file"),
        n => n,
    };
    StatsSample {
        cpu_total: num("/cpu_stats/cpu_usage/total_usage"),
        precpu_total: num("/precpu_stats/cpu_usage/total_usage"),
        system: num("/cpu_stats/system_cpu_usage"),
        presystem: num("/precpu_stats/system_cpu_usage"),
        online_cpus: online,
        memory_usage: num("/memory_stats/usage"),
        memory_inactive_file: inactive,
        memory_limit: num("/memory_stats/limit"),
    }
}
