//! The bollard adapter: the only code that knows bollard's types or an
//! engine's quirks.
//!
//! Container inspect and create go through raw Engine API JSON on the same
//! connection pool (see [`super::transport`]), so every Config/HostConfig
//! field the engine reports reaches the clone, including fields bollard's
//! models do not know; the other calls use bollard's typed client.

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bollard::errors::Error as BollardError;
use bollard::models::{EndpointSettings, NetworkConnectRequest};
use bollard::query_parameters::{EventsOptions, ListServicesOptions, StatsOptions, StopContainerOptions};
use bollard::{ClientVersion, Docker, API_DEFAULT_VERSION};
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use http::Method;
use serde_json::Value;
use tokio::sync::RwLock;

use super::connect::{EngineEndpoint, EngineSettings};
use super::transport::{RawError, Transport};
use super::{Engine, EngineError, EngineResult, ErrorKind, Op};
use crate::base::chain::chain;
use crate::base::clock;
use crate::base::telemetry::Telemetry;
use crate::model::Health;
use crate::model::{
    labels_of, ApiObject, ContainerDetails, ContainerEvent, ContainerSummary, CreateRequest, Endpoint, EngineInfo,
    ListQuery, NetworkAttachment, NodeSummary, PublishedPort, RunState, ServiceDetails, StatsSample, SwarmRole,
    TaskSummary,
};
use crate::tls::{self, TlsError, TlsFiles};

/// A Docker-compatible engine reached through bollard and raw JSON calls.
pub struct DockerEngine {
    settings: EngineSettings,
    telemetry: Arc<Telemetry>,
    transport: Transport,
    /// Connected (version negotiated) lazily: an engine that is down at
    /// start must not stop replicator from starting.
    client: RwLock<Option<Docker>>,
}

impl DockerEngine {
    /// Validates the TLS files now (a wrong CA should stop `serve` with the
    /// file named) but connects on first use.
    pub fn new(settings: EngineSettings, telemetry: Arc<Telemetry>) -> Result<Self, TlsError> {
        let transport = match &settings.endpoint {
            EngineEndpoint::Unix(path) => Transport::unix(path),
            EngineEndpoint::Tcp { addr, tls: None } => Transport::http(addr),
            EngineEndpoint::Tcp { addr, tls: Some(dir) } => {
                Transport::https(addr, tls::client_config(&TlsFiles::client_in(dir))?)
            }
        };
        Ok(Self { settings, telemetry, transport, client: RwLock::new(None) })
    }

    /// The client, with the API version agreed with the engine (the highest both speak).
    async fn client(&self) -> EngineResult<Docker> {
        if let Some(docker) = self.client.read().await.as_ref() {
            return Ok(docker.clone());
        }
        let mut slot = self.client.write().await;
        if let Some(docker) = slot.as_ref() {
            return Ok(docker.clone());
        }
        if let EngineEndpoint::Unix(path) = &self.settings.endpoint {
            check_socket(path)?;
        }
        let secs = self.settings.timeout.as_secs().max(1);
        let docker = self.transport.bollard(secs, API_DEFAULT_VERSION);
        let negotiated = tokio::time::timeout(self.settings.timeout, docker.negotiate_version())
            .await
            .map_err(|_| EngineError::new(Op::Info, "", ErrorKind::Timeout, self.timeout_message(Duration::ZERO)))?
            .map_err(|e| map_error(Op::Info, "", e))?;
        *slot = Some(negotiated.clone());
        Ok(negotiated)
    }

    fn timeout_message(&self, extra: Duration) -> String {
        format!("engine call timed out after {:?}", self.settings.timeout + extra)
    }

    /// Runs one call with the engine timeout (`extra` for calls that wait on purpose, like stop).
    async fn call<T, F, Fut>(&self, op: Op, object: &str, extra: Duration, f: F) -> EngineResult<T>
    where
        F: FnOnce(Docker) -> Fut,
        Fut: Future<Output = Result<T, BollardError>>,
    {
        let limit = self.settings.timeout + extra;
        let result = match self.client().await {
            Ok(docker) => match tokio::time::timeout(limit, f(docker)).await {
                Ok(result) => result.map_err(|e| map_error(op, object, e)),
                Err(_) => Err(EngineError::new(op, object, ErrorKind::Timeout, self.timeout_message(extra))),
            },
            Err(e) => Err(EngineError { op, object: object.to_owned(), ..e }),
        };
        self.count(op, &result);
        result
    }

    /// A raw JSON call through the same pool, for calls that must keep every field.
    async fn raw(&self, op: Op, object: &str, method: Method, path: &str, body: Option<&Value>) -> EngineResult<Value> {
        let result = match self.client().await {
            Ok(docker) => {
                let version: ClientVersion = docker.client_version();
                let call = self.transport.json(method, &version, path, body);
                match tokio::time::timeout(self.settings.timeout, call).await {
                    Ok(Ok(value)) => Ok(value),
                    Ok(Err(RawError::Status(status, message))) => {
                        Err(EngineError::new(op, object, kind_of_status(status.as_u16()), message))
                    }
                    Ok(Err(RawError::Transport(message))) => Err(EngineError::new(
                        op,
                        object,
                        ErrorKind::Unavailable,
                        format!("cannot reach the Docker engine: {message}"),
                    )),
                    Err(_) => {
                        Err(EngineError::new(op, object, ErrorKind::Timeout, self.timeout_message(Duration::ZERO)))
                    }
                }
            }
            Err(e) => Err(EngineError { op, object: object.to_owned(), ..e }),
        };
        self.count(op, &result);
        result
    }

    /// Every call is logged at debug with its kind (tests count them); failures
    /// that are not answers (missing objects, name clashes) are counted in metrics.
    fn count<T>(&self, op: Op, result: &EngineResult<T>) {
        tracing::debug!(op = %op, ok = result.is_ok(), "engine call");
        self.telemetry.engine_call(op.as_str());
        if let Err(e) = result {
            if !matches!(e.kind, ErrorKind::NotFound | ErrorKind::Conflict) {
                self.telemetry.engine_error(e.kind.name());
            }
        }
    }
}

fn check_socket(path: &Path) -> EngineResult<()> {
    if path.exists() {
        return Ok(());
    }
    Err(EngineError::new(
        Op::Ping,
        "",
        ErrorKind::Unavailable,
        format!("cannot reach the Docker engine: no socket at {}", path.display()),
    ))
}

fn kind_of_status(status: u16) -> ErrorKind {
    match status {
        404 => ErrorKind::NotFound,
        409 => ErrorKind::Conflict,
        _ => ErrorKind::Rejected,
    }
}

fn map_error(op: Op, object: &str, e: BollardError) -> EngineError {
    let (kind, message) = match e {
        BollardError::DockerResponseServerError { status_code, message } => (kind_of_status(status_code), message),
        BollardError::RequestTimeoutError => (ErrorKind::Timeout, "engine call timed out".to_owned()),
        e @ (BollardError::HyperLegacyError { .. }
        | BollardError::IOError { .. }
        | BollardError::SocketNotFoundError(_)
        | BollardError::HyperResponseError { .. }) => {
            let kind = if untrusted_certificate(&e) { ErrorKind::Untrusted } else { ErrorKind::Unavailable };
            (kind, format!("cannot reach the Docker engine: {}", chain(&e)))
        }
        e => (ErrorKind::Rejected, e.to_string()),
    };
    EngineError::new(op, object, kind, message)
}

/// Whether the TLS handshake failed on the engine's certificate. The
/// rustls error sits inside nested `io::Error`s, whose `source` skips it.
fn untrusted_certificate(e: &(dyn std::error::Error + 'static)) -> bool {
    if let Some(rustls::Error::InvalidCertificate(_)) = e.downcast_ref::<rustls::Error>() {
        return true;
    }
    let inner =
        e.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()).map(|i| i as &(dyn std::error::Error + 'static));
    inner.or_else(|| e.source()).is_some_and(untrusted_certificate)
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

/// An inspect document (`GET /containers/{id}/json`) in the project's terms.
pub fn details_from(inspect: &Value) -> ContainerDetails {
    let object = |key: &str| inspect.get(key).and_then(Value::as_object).cloned().unwrap_or_default();
    let endpoints = inspect
        .pointer("/NetworkSettings/Networks")
        .and_then(Value::as_object)
        .map(|nets| nets.iter().map(|(name, ep)| (name.clone(), endpoint_from(ep))).collect())
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
        published: published_from_inspect(inspect),
        health: inspect.pointer("/State/Health/Status").and_then(Value::as_str).and_then(Health::parse),
        health_output: inspect
            .pointer("/State/Health/Log")
            .and_then(Value::as_array)
            .and_then(|log| log.last())
            .map(|entry| str_at(entry, "Output").trim().to_owned()),
        exit_code: inspect.pointer("/State/ExitCode").and_then(Value::as_i64),
        finished_at: inspect
            .pointer("/State/FinishedAt")
            .and_then(Value::as_str)
            .filter(|at| !at.is_empty() && !at.starts_with("0001-01-01"))
            .map(crate::base::clock::unix_of_rfc3339),
        never_started: inspect
            .pointer("/State/StartedAt")
            .and_then(Value::as_str)
            .is_none_or(|at| at.is_empty() || at.starts_with("0001-01-01")),
    }
}

fn endpoint_from(ep: &Value) -> Endpoint {
    Endpoint {
        network_id: str_at(ep, "NetworkID").to_owned(),
        aliases: strings_at(ep, "Aliases"),
        links: strings_at(ep, "Links"),
        ip_address: str_at(ep, "IPAddress").to_owned(),
        driver_opts: serde_json::from_value(ep.get("DriverOpts").cloned().unwrap_or(Value::Null)).unwrap_or_default(),
    }
}

/// `NetworkSettings.Ports` of an inspect: `{"80/tcp": [{"HostIp", "HostPort"}]}`.
fn published_from_inspect(inspect: &Value) -> Vec<PublishedPort> {
    let Some(ports) = inspect.pointer("/NetworkSettings/Ports").and_then(Value::as_object) else {
        return Vec::new();
    };
    let mut published = Vec::new();
    for (port, bindings) in ports {
        let (number, protocol) = port.split_once('/').unwrap_or((port, "tcp"));
        let Ok(container_port) = number.parse() else { continue };
        for b in bindings.as_array().into_iter().flatten() {
            if let Ok(host_port) = str_at(b, "HostPort").parse() {
                let host_ip = str_at(b, "HostIp").to_owned();
                published.push(PublishedPort { container_port, protocol: protocol.to_owned(), host_ip, host_port });
            }
        }
    }
    published
}

/// `Ports` of a listing: `[{"PrivatePort", "PublicPort", "IP", "Type"}]`.
fn published_from_listing(c: &Value) -> Vec<PublishedPort> {
    let port = |p: &Value, key: &str| p.get(key).and_then(Value::as_u64).and_then(|n| u16::try_from(n).ok());
    c.get("Ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| {
            Some(PublishedPort {
                container_port: port(p, "PrivatePort")?,
                protocol: str_at(p, "Type").to_owned(),
                host_ip: str_at(p, "IP").to_owned(),
                host_port: port(p, "PublicPort")?,
            })
        })
        .collect()
}

/// One entry of a container listing (`GET /containers/json`).
pub fn summary_from(c: &Value) -> ContainerSummary {
    // Legacy links add names like `/web/db`; the container's own has one slash.
    let names = strings_at(c, "Names");
    let name = names.iter().find(|n| n.matches('/').count() == 1).or(names.first());
    let config_like = serde_json::json!({ "Labels": c.get("Labels").cloned().unwrap_or(Value::Null) });
    let networks = c
        .pointer("/NetworkSettings/Networks")
        .and_then(Value::as_object)
        .map(|nets| nets.iter().map(|(name, ep)| (name.clone(), str_at(ep, "IPAddress").to_owned())).collect())
        .unwrap_or_default();
    ContainerSummary {
        image_id: str_at(c, "ImageID").to_owned(),
        id: str_at(c, "Id").to_owned(),
        name: name.map(|n| n.trim_start_matches('/').to_owned()).unwrap_or_default(),
        state: RunState::parse(str_at(c, "State")),
        labels: labels_of(config_like.as_object().expect("object literal")),
        created: c.get("Created").and_then(Value::as_i64).unwrap_or_default(),
        networks,
        published: published_from_listing(c),
        health: Health::from_status_text(str_at(c, "Status")),
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
        update_state: v.pointer("/UpdateStatus/State").and_then(Value::as_str).map(str::to_owned),
    }
}

fn task_from(v: &Value) -> TaskSummary {
    let created = clock::unix_of_rfc3339(str_at(v, "CreatedAt"));
    TaskSummary {
        id: str_at(v, "ID").to_owned(),
        service_id: str_at(v, "ServiceID").to_owned(),
        container_id: v
            .pointer("/Status/ContainerStatus/ContainerID")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        state: v.pointer("/Status/State").and_then(Value::as_str).unwrap_or_default().to_owned(),
        desired_state: str_at(v, "DesiredState").to_owned(),
        slot: v.get("Slot").and_then(Value::as_u64),
        node_id: str_at(v, "NodeID").to_owned(),
        created,
        networks: task_addresses(v),
    }
}

/// A task's first address on each network it is attached to
/// (`NetworksAttachments`, `10.0.1.5/24`), without its prefix length.
fn task_addresses(v: &Value) -> std::collections::BTreeMap<String, String> {
    let attachments = v.get("NetworksAttachments").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    attachments
        .iter()
        .filter_map(|a| {
            let name = a.pointer("/Network/Spec/Name").and_then(Value::as_str)?;
            let address = a.pointer("/Addresses/0").and_then(Value::as_str)?;
            let ip = address.split('/').next().filter(|ip| ip.parse::<std::net::IpAddr>().is_ok())?;
            Some((name.to_owned(), ip.to_owned()))
        })
        .collect()
}

fn node_from(v: &Value) -> NodeSummary {
    NodeSummary {
        id: str_at(v, "ID").to_owned(),
        hostname: v.pointer("/Description/Hostname").and_then(Value::as_str).unwrap_or_default().to_owned(),
        state: v.pointer("/Status/State").and_then(Value::as_str).unwrap_or_default().to_owned(),
        availability: v.pointer("/Spec/Availability").and_then(Value::as_str).unwrap_or_default().to_owned(),
    }
}

fn label_filters(labels: &[String]) -> HashMap<String, Vec<String>> {
    let mut filters = HashMap::new();
    if !labels.is_empty() {
        filters.insert("label".to_owned(), labels.to_vec());
    }
    filters
}

/// Path segments and query values from callers are already validated, but a
/// name still goes through the URL encoder: it is data, never syntax.
fn encode(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

#[async_trait]
impl Engine for DockerEngine {
    async fn ping(&self) -> EngineResult<()> {
        self.call(Op::Ping, "", Duration::ZERO, |d| async move { d.ping().await.map(drop) }).await
    }

    async fn info(&self) -> EngineResult<EngineInfo> {
        let (version, info) =
            self.call(Op::Info, "", Duration::ZERO, |d| async move { tokio::try_join!(d.version(), d.info()) }).await?;
        let (version, info) = (to_json(&version), to_json(&info));
        let podman = version
            .get("Components")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|c| str_at(c, "Name").to_ascii_lowercase().contains("podman"));
        let swarm = match info.pointer("/Swarm/LocalNodeState").and_then(Value::as_str) {
            Some("active") if info.pointer("/Swarm/ControlAvailable") == Some(&Value::Bool(true)) => SwarmRole::Manager,
            Some("active") => SwarmRole::Worker,
            _ => SwarmRole::Inactive,
        };
        let api_version = self.client().await?.client_version();
        Ok(EngineInfo {
            kind: if podman { "podman" } else { "docker" }.to_owned(),
            version: str_at(&version, "Version").to_owned(),
            api_version: format!("{}.{}", api_version.major_version, api_version.minor_version),
            swarm,
            node_id: info.pointer("/Swarm/NodeID").and_then(Value::as_str).unwrap_or_default().to_owned(),
            hostname: str_at(&info, "Name").to_owned(),
        })
    }

    async fn inspect_container(&self, id: &str) -> EngineResult<ContainerDetails> {
        let path = format!("/containers/{}/json", encode(id));
        let inspect = self.raw(Op::InspectContainer, id, Method::GET, &path, None).await?;
        let mut details = details_from(&inspect);
        super::normalize::normalize(&mut details);
        Ok(details)
    }

    async fn image_id(&self, reference: &str) -> EngineResult<Option<String>> {
        match self
            .call(Op::InspectImage, reference, Duration::ZERO, |d| async move { d.inspect_image(reference).await })
            .await
        {
            Ok(image) => Ok(image.id),
            Err(e) if e.is_not_found() => Ok(None),
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
        // Raw JSON, not bollard's model: one container in a state the model
        // does not know (Podman's "stopped") must not fail the whole listing.
        let filters = serde_json::to_string(&filters).unwrap_or_default();
        let path = format!("/containers/json?all={}&filters={}", query.all, encode(&filters));
        let list = self.raw(Op::ListContainers, "", Method::GET, &path, None).await?;
        match list.as_array() {
            Some(items) => Ok(items.iter().map(summary_from).collect()),
            None => {
                Err(EngineError::new(Op::ListContainers, "", ErrorKind::Rejected, "the listing is not a JSON array"))
            }
        }
    }

    async fn create_container(&self, request: &CreateRequest) -> EngineResult<String> {
        let path = format!("/containers/create?name={}", encode(&request.name));
        let body = Value::Object(request.body.clone());
        let created = self.raw(Op::CreateContainer, &request.name, Method::POST, &path, Some(&body)).await?;
        match created.get("Id").and_then(Value::as_str) {
            Some(id) if !id.is_empty() => Ok(id.to_owned()),
            _ => Err(EngineError::new(
                Op::CreateContainer,
                &request.name,
                ErrorKind::Rejected,
                "the engine returned no id",
            )),
        }
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
        let object = format!("{network} to {container}");
        self.call(
            Op::ConnectNetwork,
            &object,
            Duration::ZERO,
            |d| async move { d.connect_network(network, request).await },
        )
        .await
    }

    async fn start_container(&self, id: &str) -> EngineResult<()> {
        self.call(Op::StartContainer, id, Duration::ZERO, |d| async move { d.start_container(id, None).await }).await
    }

    async fn pause_container(&self, id: &str) -> EngineResult<()> {
        self.call(Op::PauseContainer, id, Duration::ZERO, |d| async move { d.pause_container(id).await }).await
    }

    async fn unpause_container(&self, id: &str) -> EngineResult<()> {
        self.call(Op::UnpauseContainer, id, Duration::ZERO, |d| async move { d.unpause_container(id).await }).await
    }

    async fn stop_container(&self, id: &str, timeout_secs: i32) -> EngineResult<()> {
        let options = StopContainerOptions { t: Some(timeout_secs), signal: None };
        let grace = Duration::from_secs(timeout_secs.max(0) as u64);
        self.call(Op::StopContainer, id, grace, |d| async move { d.stop_container(id, Some(options)).await }).await
    }

    async fn remove_container(&self, id: &str) -> EngineResult<()> {
        let path = format!("/containers/{}?force=true&v=true", encode(id));
        self.raw(Op::RemoveContainer, id, Method::DELETE, &path, None).await.map(drop)
    }

    async fn inspect_service(&self, id: &str) -> EngineResult<ServiceDetails> {
        let service = self
            .call(Op::InspectService, id, Duration::ZERO, |d| async move { d.inspect_service(id, None).await })
            .await?;
        Ok(service_from(&to_json(&service)))
    }

    async fn list_services(&self, labels: &[String]) -> EngineResult<Vec<ServiceDetails>> {
        let options = ListServicesOptions { filters: Some(label_filters(labels)), ..Default::default() };
        let list = self
            .call(Op::ListServices, "", Duration::ZERO, |d| async move { d.list_services(Some(options)).await })
            .await?;
        Ok(list.iter().map(|s| service_from(&to_json(s))).collect())
    }

    async fn update_service(&self, id: &str, version: u64, spec: &ApiObject) -> EngineResult<()> {
        // Raw JSON, as for containers: spec fields bollard's model does not
        // know must survive a scale, or Swarm would roll every task.
        let path = format!("/services/{}/update?version={version}", encode(id));
        let body = Value::Object(spec.clone());
        match self.raw(Op::UpdateService, id, Method::POST, &path, Some(&body)).await {
            Ok(_) => Ok(()),
            // Swarm answers a stale version with a 500 whose only sign is this
            // text (no status code of its own): it is a conflict to retry.
            Err(e) if e.kind == ErrorKind::Rejected && e.message.contains("out of sequence") => {
                Err(EngineError { kind: ErrorKind::Conflict, ..e })
            }
            Err(e) => Err(e),
        }
    }

    async fn list_tasks(&self, service_id: Option<&str>) -> EngineResult<Vec<TaskSummary>> {
        let mut filters = HashMap::from([("desired-state".to_owned(), vec!["running".to_owned()])]);
        if let Some(id) = service_id {
            filters.insert("service".to_owned(), vec![id.to_owned()]);
        }
        // Read raw: bollard's task model has no NetworksAttachments, the tasks' addresses.
        let filters = serde_json::to_string(&filters).unwrap_or_default();
        let path = format!("/tasks?filters={}", encode(&filters));
        let list = self.raw(Op::ListTasks, service_id.unwrap_or_default(), Method::GET, &path, None).await?;
        Ok(list.as_array().map(|tasks| tasks.iter().map(task_from).collect()).unwrap_or_default())
    }

    async fn list_nodes(&self) -> EngineResult<Vec<NodeSummary>> {
        let list = self.raw(Op::ListNodes, "", Method::GET, "/nodes", None).await?;
        Ok(list.as_array().map(|nodes| nodes.iter().map(node_from).collect()).unwrap_or_default())
    }

    async fn stats(&self, id: &str) -> EngineResult<StatsSample> {
        let sample = self.stats_once(id).await?;
        if sample.precpu_total != 0 || sample.presystem != 0 {
            return Ok(sample);
        }
        // Podman answers a single reading without the previous one Docker
        // takes a second before: take that second reading ourselves.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let later = self.stats_once(id).await?;
        Ok(StatsSample { precpu_total: sample.cpu_total, presystem: sample.system, ..later })
    }

    async fn container_events(
        &self,
        since_nano: Option<i64>,
    ) -> EngineResult<BoxStream<'static, EngineResult<ContainerEvent>>> {
        let docker = self.client().await.map_err(|e| EngineError { op: Op::Events, ..e })?;
        let since = since_nano.map(|n| format!("{}.{:09}", n / 1_000_000_000, n % 1_000_000_000));
        let filters = HashMap::from([("type".to_owned(), vec!["container".to_owned()])]);
        let options = EventsOptions { since, until: None, filters: Some(filters) };
        let stream = docker.events(Some(options)).map(|item| {
            let message = item.map_err(|e| map_error(Op::Events, "", e))?;
            Ok(event_from(&to_json(&message)))
        });
        Ok(Box::pin(stream))
    }
}

impl DockerEngine {
    /// One `GET /containers/{id}/stats?stream=false`.
    async fn stats_once(&self, id: &str) -> EngineResult<StatsSample> {
        let options = StatsOptions { stream: false, one_shot: false };
        let first = self
            .call(Op::Stats, id, Duration::ZERO, |d| async move {
                let mut stream = Box::pin(d.stats(id, Some(options)));
                stream.next().await.unwrap_or(Err(BollardError::DockerStreamError { error: "no stats".into() }))
            })
            .await?;
        Ok(stats_from(&to_json(&first)))
    }
}

/// One message of `GET /events`, in Docker's words (see [`super::normalize`]).
pub fn event_from(v: &Value) -> ContainerEvent {
    ContainerEvent {
        action: super::normalize::event_action(str_at(v, "Action")).to_owned(),
        id: v.pointer("/Actor/ID").and_then(Value::as_str).unwrap_or_default().to_owned(),
        attributes: serde_json::from_value(v.pointer("/Actor/Attributes").cloned().unwrap_or(Value::Null))
            .unwrap_or_default(),
        time_nano: v.get("timeNano").and_then(Value::as_i64).unwrap_or_default(),
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

/// The lease's record in a Swarm config object: the cluster's Raft store
/// keeps it on every manager, and updates it only at the version it was
/// read at (the second of two writers is answered "update out of
/// sequence"; of two creations, the second finds the name taken). Only a
/// config's labels may change, which is all the record needs.
pub struct SwarmLease {
    engine: std::sync::Arc<DockerEngine>,
    name: String,
}

/// Where the record's fields live among the config's labels.
const LEASE_HOLDER: &str = "replicator.lease.holder";
const LEASE_ADDRESS: &str = "replicator.lease.address";

impl SwarmLease {
    /// The record in the config named `name`, made at the first write.
    pub fn new(engine: std::sync::Arc<DockerEngine>, name: &str) -> Self {
        Self { engine, name: name.to_owned() }
    }

    fn spec(&self, record: &super::LeaseRecord) -> Value {
        let mut labels = serde_json::Map::new();
        labels.insert(LEASE_HOLDER.into(), Value::String(record.holder.clone()));
        if let Some(address) = &record.address {
            labels.insert(LEASE_ADDRESS.into(), Value::String(address.clone()));
        }
        // The data cannot change after creation: a fixed word, never read.
        serde_json::json!({"Name": self.name, "Labels": labels, "Data": "bGVhc2U="})
    }

    /// The config's id and version, `None` when it does not exist.
    async fn current(&self) -> EngineResult<Option<(String, super::Versioned)>> {
        let path = format!("/configs/{}", encode(&self.name));
        let config = match self.engine.raw(Op::Lease, &self.name, Method::GET, &path, None).await {
            Ok(config) => config,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        let label =
            |key: &str| config.pointer(&format!("/Spec/Labels/{}", key.replace('/', "~1"))).and_then(Value::as_str);
        let record = label(LEASE_HOLDER).map(|holder| super::LeaseRecord {
            holder: holder.to_owned(),
            address: label(LEASE_ADDRESS).map(str::to_owned),
        });
        let version = config.pointer("/Version/Index").and_then(Value::as_u64).unwrap_or_default();
        let id = config.get("ID").and_then(Value::as_str).unwrap_or_default().to_owned();
        Ok(Some((id, super::Versioned { version, record })))
    }
}

#[async_trait]
impl super::LeaseStore for SwarmLease {
    async fn read(&self) -> EngineResult<super::Versioned> {
        Ok(self.current().await?.map(|(_, v)| v).unwrap_or_default())
    }

    async fn write(&self, version: u64, record: &super::LeaseRecord) -> EngineResult<bool> {
        let spec = self.spec(record);
        let written = match (version, self.current().await?) {
            (0, None) => self.engine.raw(Op::Lease, &self.name, Method::POST, "/configs/create", Some(&spec)).await,
            (_, Some((id, current))) if current.version == version => {
                let path = format!("/configs/{}/update?version={version}", encode(&id));
                self.engine.raw(Op::Lease, &self.name, Method::POST, &path, Some(&spec)).await
            }
            _ => return Ok(false),
        };
        match written {
            Ok(_) => Ok(true),
            // Another creation, or another update at this version, came first.
            Err(e) if e.is_conflict() || e.message.contains("out of sequence") => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn describe(&self) -> String {
        format!("Swarm config {}", self.name)
    }
}

#[cfg(test)]
mod tests {
    //! Recorded Engine API documents (Docker 20.10, API 1.41) read the way
    //! the adapter reads them.

    use super::*;
    use crate::rules::plan::{plan_clone, CloneSpec};

    #[test]
    fn a_task_is_reached_at_its_first_address_on_each_network_without_the_prefix_length() {
        let task: Value = serde_json::json!({
            "ID": "t1",
            "NetworksAttachments": [
                {"Network": {"Spec": {"Name": "ingress"}}, "Addresses": ["10.0.0.7/24"]},
                {"Network": {"Spec": {"Name": "rs_default"}}, "Addresses": ["10.0.1.5/24", "10.0.1.9/24"]},
                {"Network": {"Spec": {"Name": "broken"}}, "Addresses": ["not an address"]},
                {"Network": {"Spec": {"Name": "none"}}, "Addresses": []}
            ]
        });
        let networks = task_from(&task).networks;
        let expected = [("ingress", "10.0.0.7"), ("rs_default", "10.0.1.5")];
        assert_eq!(networks, expected.iter().map(|(n, ip)| (n.to_string(), ip.to_string())).collect());
    }

    fn fixture(name: &str) -> String {
        let path = format!("{}/tests/fixtures/docker-20.10/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn inspect() -> Value {
        serde_json::from_str(&fixture("inspect.json")).unwrap()
    }

    #[test]
    fn an_inspect_document_gives_name_labels_networks_and_ports() {
        let d = details_from(&inspect());
        assert_eq!(d.name, "fixture-web");
        assert_eq!(d.label("replicator.max"), Some("3"));
        assert_eq!(d.state, RunState::Running);
        let net = &d.endpoints["fixture-net"];
        assert!(net.aliases.contains(&"web".to_owned()) && !net.ip_address.is_empty(), "{net:?}");
        let bound: Vec<(u16, &str, &str)> =
            d.published.iter().map(|p| (p.container_port, p.protocol.as_str(), p.host_ip.as_str())).collect();
        assert_eq!(bound, [(8080, "tcp", "0.0.0.0"), (8080, "tcp", "::")], "one binding per address family");
        assert!(d.summary().created > 1_700_000_000, "RFC 3339 with nanoseconds parses");
        assert!(!d.never_started, "it runs: it has started");
        let mut created = inspect();
        created["State"]["StartedAt"] = "0001-01-01T00:00:00Z".into();
        assert!(details_from(&created).never_started, "the zero time: never started");
    }

    #[test]
    fn fields_no_model_knows_reach_the_create_request() {
        let mut doc = inspect();
        doc["HostConfig"]["FutureIsolationKnob"] = serde_json::json!({ "level": 3 });
        doc["Config"]["FutureConfigField"] = serde_json::json!(["a", "b"]);
        let plan = plan_clone(
            &details_from(&doc),
            &CloneSpec {
                name: "fixture-web-2",
                group: "fixture-web",
                original_id: "abc",
                tag_image_id: None,
                keep_host_ports: false,
                extra_labels: Default::default(),
            },
        );
        let body = Value::Object(plan.create.body);
        assert_eq!(body["HostConfig"]["FutureIsolationKnob"]["level"], 3);
        assert_eq!(body["FutureConfigField"][1], "b");
        assert_eq!(body["HostConfig"]["Ulimits"][0]["Name"], "nofile", "known fields too");
        // bollard's typed model would have dropped them on the way to the engine.
        let typed: bollard::models::ContainerCreateBody = serde_json::from_value(body).unwrap();
        let round_trip = serde_json::to_value(typed).unwrap();
        assert!(round_trip["HostConfig"].get("FutureIsolationKnob").is_none());
    }

    #[test]
    fn a_listing_entry_gives_addresses_and_published_ports() {
        let list: Vec<Value> = serde_json::from_str(&fixture("list.json")).unwrap();
        let c = summary_from(&list[0]);
        assert_eq!(c.name, "fixture-web");
        assert!(!c.networks["fixture-net"].is_empty());
        let bound: Vec<(u16, &str, &str)> =
            c.published.iter().map(|p| (p.container_port, p.protocol.as_str(), p.host_ip.as_str())).collect();
        assert_eq!(bound, [(8080, "tcp", "0.0.0.0"), (8080, "tcp", "::")]);
        assert_eq!(c.labels["replicator.enable"], "true");
    }

    #[test]
    fn events_carry_action_id_name_and_labels() {
        let events: Vec<ContainerEvent> =
            fixture("events.jsonl").lines().map(|l| event_from(&serde_json::from_str(l).unwrap())).collect();
        let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(actions, ["create", "start", "pause", "unpause", "rename", "kill", "die", "destroy"]);
        assert!(events.iter().all(|e| e.id.len() == 64 && e.time_nano > 0));
        assert_eq!(events[0].attributes["replicator.group"], "web");
        assert_eq!(events[4].attributes["name"], "fixture-ev2", "a rename names the new name");
    }

    #[test]
    fn podman_events_read_in_dockers_words() {
        let path = format!("{}/tests/fixtures/podman-4.3/events.jsonl", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(path).unwrap();
        let events: Vec<ContainerEvent> = text.lines().map(|l| event_from(&serde_json::from_str(l).unwrap())).collect();
        let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(
            actions,
            ["create", "init", "start", "pause", "unpause", "die", "cleanup", "destroy"],
            "remove is destroy"
        );
        assert_eq!(events[0].attributes["replicator.group"], "web");
        assert_eq!(events[0].attributes["name"], "fixture-ev");
    }

    #[test]
    fn a_state_podman_names_stopped_reads_as_exited() {
        let listed = serde_json::json!({ "Id": "abc", "Names": ["/web"], "State": "stopped", "Labels": {} });
        assert_eq!(summary_from(&listed).state, RunState::Exited);
    }
}
