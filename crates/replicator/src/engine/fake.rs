//! A stateful in-process engine for unit tests of the service, the
//! inventory and the controller: containers with names, labels and states,
//! Swarm services with versions, an event stream that can be cut, and
//! injectable failures and delays. It counts every call by operation.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::sync::{broadcast, watch};

use super::{Engine, EngineError, EngineResult, ErrorKind, Op};
use crate::base::clock;
use crate::model::{
    ApiObject, ContainerDetails, ContainerEvent, ContainerSummary, CreateRequest, EngineInfo, Health, ListQuery,
    NetworkAttachment, NodeSummary, RunState, ServiceDetails, StatsSample, SwarmRole, TaskSummary,
};

/// One container the fake holds.
#[derive(Debug, Clone)]
struct Container {
    details: ContainerDetails,
    created: i64,
}

/// A failure to inject: after `skip` more successful calls, the next
/// `times` calls of `op` fail with `kind`.
struct Failure {
    op: Op,
    kind: ErrorKind,
    message: String,
    skip: usize,
    times: usize,
}

#[derive(Default)]
struct State {
    containers: BTreeMap<String, Container>,
    services: BTreeMap<String, (ServiceDetails, Vec<TaskSummary>)>,
    next: u64,
    clock: i64,
    calls: HashMap<String, usize>,
    failures: VecDeque<Failure>,
    delays: HashMap<String, Duration>,
    /// What every container's stats read (idle unless a test says otherwise).
    stats: StatsSample,
    /// Calls that panic, a bug stand-in: by operation, how many more.
    panics: HashMap<String, usize>,
    swarm: SwarmRole,
    /// The swarm's nodes; tasks are placed on them in turn (the first is this engine's).
    nodes: Vec<NodeSummary>,
    /// Every event so far, for streams that ask from an earlier instant.
    history: Vec<ContainerEvent>,
}

/// The fake engine.
pub struct FakeEngine {
    state: Mutex<State>,
    events: broadcast::Sender<ContainerEvent>,
    cuts: watch::Sender<u64>,
}

impl Default for FakeEngine {
    fn default() -> Self {
        Self {
            state: Mutex::new(State { clock: 1_700_000_000, ..State::default() }),
            events: broadcast::channel(1024).0,
            cuts: watch::channel(0).0,
        }
    }
}

impl FakeEngine {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A running container named `name` with `labels`; returns its id.
    pub fn add_container(&self, name: &str, labels: &[(&str, &str)]) -> String {
        let labels: serde_json::Map<String, Value> =
            labels.iter().map(|(k, v)| (k.to_string(), Value::String(v.to_string()))).collect();
        let config = json!({ "Image": "app:1", "Labels": labels });
        let id = self.insert(name, config.as_object().cloned().unwrap_or_default(), RunState::Running);
        self.emit("create", &id);
        self.emit("start", &id);
        id
    }

    fn insert(&self, name: &str, config: ApiObject, state: RunState) -> String {
        let mut s = self.lock();
        s.next += 1;
        s.clock += 1;
        let id = format!("{:064x}", s.next);
        let details = ContainerDetails {
            id: id.clone(),
            name: name.to_owned(),
            image_id: "sha256:app".into(),
            created: String::new(),
            state,
            config,
            ..Default::default()
        };
        let created = s.clock;
        s.containers.insert(id.clone(), Container { details, created });
        id
    }

    /// Attaches container `id` to `network` at `ip`.
    pub fn attach(&self, id: &str, network: &str, ip: &str) {
        let mut s = self.lock();
        if let Some(c) = s.containers.get_mut(id) {
            let endpoint = crate::model::Endpoint { ip_address: ip.to_owned(), ..Default::default() };
            c.details.endpoints.insert(network.to_owned(), endpoint);
        }
    }

    /// Makes the next `times` calls of `op` fail with `kind`.
    pub fn fail(&self, op: Op, kind: ErrorKind, times: usize) {
        self.fail_after(op, 0, kind, times);
    }

    /// Lets `skip` calls of `op` succeed, then fails the next `times` with `kind`.
    pub fn fail_after(&self, op: Op, skip: usize, kind: ErrorKind, times: usize) {
        let message = format!("injected {}", kind.name());
        self.lock().failures.push_back(Failure { op, kind, message, skip, times });
    }

    /// Makes every container's stats read `percent` of one core.
    pub fn set_cpu_percent(&self, percent: u64) {
        self.lock().stats = StatsSample { cpu_total: percent, system: 100, online_cpus: 1, ..StatsSample::default() };
    }

    /// Makes the next `times` calls of `op` panic, as a bug in a caller's path would.
    pub fn panic_on(&self, op: Op, times: usize) {
        self.lock().panics.insert(op.to_string(), times);
    }

    /// Makes every call of `op` take `delay` first.
    pub fn delay(&self, op: Op, delay: Duration) {
        self.lock().delays.insert(op.to_string(), delay);
    }

    /// Calls of `op` so far.
    pub fn calls(&self, op: Op) -> usize {
        self.lock().calls.get(&op.to_string()).copied().unwrap_or(0)
    }

    /// Every call so far.
    pub fn total_calls(&self) -> usize {
        self.lock().calls.values().sum()
    }

    /// Names of the containers in `state`.
    pub fn names_in(&self, state: RunState) -> Vec<String> {
        let s = self.lock();
        s.containers.values().filter(|c| c.details.state == state).map(|c| c.details.name.clone()).collect()
    }

    /// Every container's name.
    pub fn names(&self) -> Vec<String> {
        self.lock().containers.values().map(|c| c.details.name.clone()).collect()
    }

    /// Changes a container's state as the engine would, with its event.
    pub fn set_state(&self, id: &str, state: RunState, action: &str) {
        if let Some(c) = self.lock().containers.get_mut(id) {
            c.details.state = state;
            if !state.is_live() {
                c.details.finished_at = Some(clock::unix_now());
            }
        }
        self.emit(action, id);
    }

    /// Moves back when a stopped container's last run ended.
    pub fn set_finished_at(&self, id: &str, unix: i64) {
        if let Some(c) = self.lock().containers.get_mut(id) {
            c.details.finished_at = Some(unix);
        }
    }

    /// Sets a container's health report, with the engine's `health_status` event.
    pub fn set_health(&self, id: &str, health: Health, output: &str) {
        if let Some(c) = self.lock().containers.get_mut(id) {
            c.details.health = Some(health);
            c.details.health_output = Some(output.to_owned());
        }
        let status = serde_json::to_value(health).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
        self.emit(&format!("health_status: {status}"), id);
    }

    /// The id of the container named `name`.
    pub fn id_of(&self, name: &str) -> Option<String> {
        self.find(name).map(|c| c.details.id)
    }

    /// A running container with a healthcheck in its config, reported healthy.
    pub fn add_checked_container(&self, name: &str, labels: &[(&str, &str)]) -> String {
        let id = self.add_container(name, labels);
        if let Some(c) = self.lock().containers.get_mut(&id) {
            c.details.config.insert("Healthcheck".into(), json!({ "Test": ["CMD", "true"] }));
        }
        self.set_health(&id, Health::Healthy, "ok");
        id
    }

    /// Removes a container without telling anyone (a missed event).
    pub fn remove_silently(&self, id: &str) {
        self.lock().containers.remove(id);
    }

    /// Ends every event stream, as a dropped connection would.
    pub fn cut(&self) {
        self.cuts.send_modify(|n| *n += 1);
    }

    /// Turns Swarm mode on with this node as `role`.
    pub fn set_swarm(&self, role: SwarmRole) {
        self.lock().swarm = role;
    }

    /// A replicated service with `replicas` running tasks; returns its id.
    pub fn add_service(&self, name: &str, replicas: u64, labels: &[(&str, &str)]) -> String {
        let mut s = self.lock();
        s.next += 1;
        let id = format!("svc{}", s.next);
        let labels: BTreeMap<String, String> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let spec = json!({ "Name": name, "Labels": labels, "Mode": { "Replicated": { "Replicas": replicas } } });
        let details = ServiceDetails {
            id: id.clone(),
            name: name.into(),
            version: 1,
            labels,
            replicas: Some(replicas),
            spec: spec.as_object().cloned().unwrap_or_default(),
            update_state: None,
        };
        let tasks = tasks_for(&id, replicas, &s.nodes);
        s.services.insert(id.clone(), (details, tasks));
        id
    }

    /// Makes the swarm these nodes (the first is this engine's); tasks made
    /// from now on are placed on them in turn.
    pub fn set_nodes(&self, ids: &[&str]) {
        let nodes = ids
            .iter()
            .map(|id| NodeSummary {
                id: (*id).into(),
                hostname: format!("host-{id}"),
                state: "ready".into(),
                availability: "active".into(),
            })
            .collect();
        self.lock().nodes = nodes;
    }

    /// Marks a node `down`, as managers do when its engine stops answering.
    pub fn set_node_state(&self, id: &str, state: &str) {
        if let Some(n) = self.lock().nodes.iter_mut().find(|n| n.id == id) {
            n.state = state.into();
        }
    }

    /// Sets the state of a service's last rolling update (`updating`, `paused`...).
    pub fn set_update_state(&self, id: &str, state: Option<&str>) {
        if let Some((d, _)) = self.lock().services.get_mut(id) {
            d.update_state = state.map(str::to_owned);
            d.version += 1;
        }
    }

    /// The desired replicas of a service.
    pub fn service_replicas(&self, id: &str) -> Option<u64> {
        self.lock().services.get(id).and_then(|(d, _)| d.replicas)
    }

    /// Moves a service's version on, as a concurrent update would.
    pub fn bump_service_version(&self, id: &str) {
        if let Some((d, _)) = self.lock().services.get_mut(id) {
            d.version += 1;
        }
    }

    /// Records and broadcasts an event, stamped with the real clock as the
    /// engine's are (streams replay from the instant they ask for).
    fn emit(&self, action: &str, id: &str) {
        let mut s = self.lock();
        let mut attributes = BTreeMap::new();
        if let Some(c) = s.containers.get(id) {
            attributes = c.details.labels();
            attributes.insert("name".into(), c.details.name.clone());
        }
        let time_nano = clock::unix_nanos_now();
        let event = ContainerEvent { action: action.into(), id: id.into(), attributes, time_nano };
        s.history.push(event.clone());
        let _ = self.events.send(event);
    }

    /// Counts the call, waits its delay, and fails it if a failure is due.
    /// A call that moves a container to `to`, announced as `action`.
    async fn transition(&self, op: Op, id: &str, to: RunState, action: &str) -> EngineResult<()> {
        self.enter(op, id).await?;
        let found = self.find(id).ok_or_else(|| missing(op, id))?;
        self.set_state(&found.details.id, to, action);
        Ok(())
    }

    async fn enter(&self, op: Op, object: &str) -> EngineResult<()> {
        let (delay, panics) = {
            let mut s = self.lock();
            *s.calls.entry(op.to_string()).or_default() += 1;
            let panics = s.panics.get_mut(&op.to_string()).filter(|n| **n > 0).map(|n| *n -= 1).is_some();
            (s.delays.get(&op.to_string()).copied(), panics)
        };
        assert!(!panics, "injected panic in {op} {object}");
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        let mut s = self.lock();
        if let Some(i) = s.failures.iter().position(|f| f.op == op) {
            let f = &mut s.failures[i];
            if f.skip > 0 {
                f.skip -= 1;
                return Ok(());
            }
            let e = EngineError::new(op, object, f.kind, f.message.clone());
            f.times -= 1;
            if f.times == 0 {
                s.failures.remove(i);
            }
            return Err(e);
        }
        Ok(())
    }

    fn find(&self, reference: &str) -> Option<Container> {
        let s = self.lock();
        s.containers
            .values()
            .find(|c| c.details.id == reference || c.details.name == reference || c.details.id.starts_with(reference))
            .cloned()
    }
}

fn tasks_for(service: &str, replicas: u64, nodes: &[NodeSummary]) -> Vec<TaskSummary> {
    let node = |slot: u64| nodes.get((slot as usize - 1) % nodes.len().max(1)).map(|n| n.id.clone());
    (1..=replicas)
        .map(|slot| TaskSummary {
            node_id: node(slot).unwrap_or_default(),
            service_id: service.into(),
            id: format!("{service}-task{slot}"),
            container_id: format!("{service}-c{slot}"),
            state: "running".into(),
            desired_state: "running".into(),
            slot: Some(slot),
            created: 1_700_000_000,
            networks: Default::default(),
        })
        .collect()
}

fn missing(op: Op, object: &str) -> EngineError {
    EngineError::new(op, object, ErrorKind::NotFound, format!("No such object: {object}"))
}

fn summary(c: &Container) -> ContainerSummary {
    ContainerSummary { created: c.created, ..c.details.summary() }
}

#[async_trait]
impl Engine for FakeEngine {
    async fn ping(&self) -> EngineResult<()> {
        self.enter(Op::Ping, "").await
    }

    async fn info(&self) -> EngineResult<EngineInfo> {
        self.enter(Op::Info, "").await?;
        let s = self.lock();
        Ok(EngineInfo {
            kind: "fake".into(),
            version: "1".into(),
            api_version: "1.41".into(),
            swarm: s.swarm,
            node_id: s.nodes.first().map(|n| n.id.clone()).unwrap_or_default(),
            hostname: "fake".into(),
        })
    }

    async fn inspect_container(&self, id: &str) -> EngineResult<ContainerDetails> {
        self.enter(Op::InspectContainer, id).await?;
        let c = self.find(id).ok_or_else(|| missing(Op::InspectContainer, id))?;
        let created = clock::rfc3339(c.created);
        let never_started = c.details.state == RunState::Created;
        Ok(ContainerDetails { created, never_started, ..c.details })
    }

    async fn image_id(&self, reference: &str) -> EngineResult<Option<String>> {
        self.enter(Op::InspectImage, reference).await?;
        Ok(Some("sha256:app".into()))
    }

    async fn list_containers(&self, query: &ListQuery) -> EngineResult<Vec<ContainerSummary>> {
        self.enter(Op::ListContainers, "").await?;
        let s = self.lock();
        let matches = |c: &Container| {
            let labels = c.details.labels();
            (query.all || c.details.state == RunState::Running)
                && query.labels.iter().all(|f| match f.split_once('=') {
                    Some((k, v)) => labels.get(k).is_some_and(|l| l == v),
                    None => labels.contains_key(f),
                })
                && query.name.as_ref().is_none_or(|n| c.details.name.contains(n.as_str()))
                && query.id.as_ref().is_none_or(|id| &c.details.id == id)
        };
        Ok(s.containers.values().filter(|c| matches(c)).map(summary).collect())
    }

    async fn create_container(&self, request: &CreateRequest) -> EngineResult<String> {
        self.enter(Op::CreateContainer, &request.name).await?;
        if self.find(&request.name).is_some_and(|c| c.details.name == request.name) {
            return Err(EngineError::new(Op::CreateContainer, &request.name, ErrorKind::Conflict, "name in use"));
        }
        let mut config = request.body.clone();
        config.retain(|k, _| k != "HostConfig" && k != "NetworkingConfig");
        let checked = config.contains_key("Healthcheck");
        let id = self.insert(&request.name, config, RunState::Created);
        if checked {
            self.set_health(&id, Health::Starting, "starting");
        }
        self.emit("create", &id);
        Ok(id)
    }

    async fn connect_network(&self, container: &str, _: &NetworkAttachment) -> EngineResult<()> {
        self.enter(Op::ConnectNetwork, container).await
    }

    async fn start_container(&self, id: &str) -> EngineResult<()> {
        self.transition(Op::StartContainer, id, RunState::Running, "start").await
    }

    async fn pause_container(&self, id: &str) -> EngineResult<()> {
        self.transition(Op::PauseContainer, id, RunState::Paused, "pause").await
    }

    async fn unpause_container(&self, id: &str) -> EngineResult<()> {
        self.transition(Op::UnpauseContainer, id, RunState::Running, "unpause").await
    }

    async fn stop_container(&self, id: &str, _: i32) -> EngineResult<()> {
        self.transition(Op::StopContainer, id, RunState::Exited, "die").await
    }

    async fn remove_container(&self, id: &str) -> EngineResult<()> {
        self.enter(Op::RemoveContainer, id).await?;
        let found = self.find(id).ok_or_else(|| missing(Op::RemoveContainer, id))?;
        self.lock().containers.remove(&found.details.id);
        self.emit("destroy", &found.details.id);
        Ok(())
    }

    async fn inspect_service(&self, id: &str) -> EngineResult<ServiceDetails> {
        self.enter(Op::InspectService, id).await?;
        let s = self.lock();
        let found = s.services.values().find(|(d, _)| d.id == id || d.name == id);
        found.map(|(d, _)| d.clone()).ok_or_else(|| missing(Op::InspectService, id))
    }

    async fn list_services(&self, labels: &[String]) -> EngineResult<Vec<ServiceDetails>> {
        self.enter(Op::ListServices, "").await?;
        let s = self.lock();
        if s.swarm != SwarmRole::Manager {
            return Err(EngineError::new(
                Op::ListServices,
                "",
                ErrorKind::Rejected,
                "This node is not a swarm manager.",
            ));
        }
        let wanted = |d: &ServiceDetails| {
            labels.iter().all(|f| match f.split_once('=') {
                Some((k, v)) => d.labels.get(k).is_some_and(|l| l == v),
                None => d.labels.contains_key(f),
            })
        };
        Ok(s.services.values().map(|(d, _)| d).filter(|d| wanted(d)).cloned().collect())
    }

    async fn update_service(&self, id: &str, version: u64, spec: &ApiObject) -> EngineResult<()> {
        self.enter(Op::UpdateService, id).await?;
        let mut s = self.lock();
        let nodes = s.nodes.clone();
        let (details, tasks) = s.services.get_mut(id).ok_or_else(|| missing(Op::UpdateService, id))?;
        if details.version != version {
            return Err(EngineError::new(Op::UpdateService, id, ErrorKind::Conflict, "update out of sequence"));
        }
        let replicas = spec.get("Mode").and_then(|m| m.pointer("/Replicated/Replicas")).and_then(Value::as_u64);
        details.version += 1;
        details.replicas = replicas;
        details.spec = spec.clone();
        *tasks = tasks_for(id, replicas.unwrap_or(0), &nodes);
        Ok(())
    }

    async fn list_tasks(&self, service_id: Option<&str>) -> EngineResult<Vec<TaskSummary>> {
        self.enter(Op::ListTasks, service_id.unwrap_or_default()).await?;
        let s = self.lock();
        let wanted = |id: &String| service_id.is_none_or(|w| w == id);
        Ok(s.services.iter().filter(|(id, _)| wanted(id)).flat_map(|(_, (_, tasks))| tasks.clone()).collect())
    }

    async fn list_nodes(&self) -> EngineResult<Vec<NodeSummary>> {
        self.enter(Op::ListNodes, "").await?;
        Ok(self.lock().nodes.clone())
    }

    async fn stats(&self, id: &str) -> EngineResult<StatsSample> {
        self.enter(Op::Stats, id).await?;
        Ok(self.lock().stats)
    }

    async fn container_events(
        &self,
        since: Option<i64>,
    ) -> EngineResult<BoxStream<'static, EngineResult<ContainerEvent>>> {
        self.enter(Op::Events, "").await?;
        let (past, events) = {
            let s = self.lock();
            let since = since.unwrap_or(i64::MAX);
            let past: Vec<EngineResult<ContainerEvent>> =
                s.history.iter().filter(|e| e.time_nano >= since).cloned().map(Ok).collect();
            (past, self.events.subscribe())
        };
        let mut cuts = self.cuts.subscribe();
        cuts.borrow_and_update();
        let live = futures_util::stream::unfold((events, cuts), |(mut events, mut cuts)| async move {
            tokio::select! {
                event = events.recv() => match event {
                    Ok(event) => Some((Ok(event), (events, cuts))),
                    Err(_) => None,
                },
                _ = cuts.changed() => None,
            }
        });
        Ok(Box::pin(futures_util::stream::iter(past).chain(live)))
    }
}
