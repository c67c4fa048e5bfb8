//! The one loop that keeps the inventory current: a full listing, then the
//! engine's events from just before it, a re-listing every `resync` and
//! after every cut of the stream. Level-triggered: an event that was missed
//! is repaired by the next listing, never trusted forever.

use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{SwarmService, Writer};
use crate::engine::{Engine, EngineResult};
use crate::model::{ContainerEvent, ContainerSummary, ListQuery, RunState, SwarmRole};
use crate::rules::labels;

/// The pause before looking again after the engine went away.
const RETRY: Duration = Duration::from_secs(2);
/// How long the engine's view may lag behind its own `die` event.
const SETTLE: Duration = Duration::from_millis(500);
/// How far before a listing its events are asked for: the engine's listing
/// may not yet show what an event just announced, so the events of the last
/// moments are applied again after it (applying one twice is harmless).
const REPLAY: Duration = Duration::from_secs(3);
/// The default of [`Informer::with_swarm_poll`].
pub const SWARM_POLL: Duration = Duration::from_secs(5);

/// Feeds an inventory from an engine, through its [`Writer`].
pub struct Informer {
    engine: Arc<dyn Engine>,
    writer: Writer,
    resync: Duration,
    /// How often a manager re-reads its services, tasks and nodes: tasks on
    /// other nodes send this engine no events.
    swarm_poll: Duration,
    /// When the last successful listing began (unix nanoseconds), until `run`
    /// takes it to follow events from there instead of listing again.
    listed_since: std::sync::Mutex<Option<i64>>,
}

impl Informer {
    /// An informer that re-lists every `resync`.
    pub fn new(engine: Arc<dyn Engine>, writer: Writer, resync: Duration) -> Self {
        Self { engine, writer, resync, swarm_poll: SWARM_POLL, listed_since: std::sync::Mutex::new(None) }
    }

    /// Records that the engine cannot be listed (the first listing failed
    /// before the loop runs): readers get the reason until it can.
    pub fn unavailable(&self, reason: crate::engine::EngineError) {
        self.writer.set_unavailable(reason);
    }

    /// Re-reads Swarm services, tasks and nodes every `every` on a manager.
    pub fn with_swarm_poll(mut self, every: Duration) -> Self {
        self.swarm_poll = every;
        self
    }

    /// Runs until `cancel`: list, follow, re-list.
    pub async fn run(self, cancel: CancellationToken) {
        let mut logged_down = false;
        // A listing made just before (server::run's first look) is not made twice.
        let mut listed = self.listed_since.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        loop {
            // Events are asked for from before the listing, so none falls between.
            let (since, listing) = match listed.take() {
                Some(at) => (at, Ok(())),
                None => (replay_from(), self.list().await),
            };
            match listing {
                Ok(()) if logged_down => {
                    info!("engine reachable again; inventory re-listed");
                    logged_down = false;
                }
                Ok(()) => {}
                Err(e) => {
                    if !logged_down {
                        warn!(error = %e, "cannot list the engine; retrying");
                        logged_down = true;
                    }
                    self.writer.set_unavailable(e);
                    tokio::select! {
                        () = tokio::time::sleep(RETRY) => {}
                        () = self.writer.resync_wanted() => {}
                        () = cancel.cancelled() => return,
                    }
                    continue;
                }
            }
            match self.engine.container_events(Some(since)).await {
                Ok(events) => self.follow(events, &cancel).await,
                Err(e) => debug!(error = %e, "cannot follow engine events; re-listing"),
            }
            if sleep_or_cancel(Duration::from_millis(200), &cancel).await {
                return;
            }
        }
    }

    /// One full listing of containers (and Swarm services on a manager).
    pub async fn resync(&self) -> EngineResult<()> {
        let began = replay_from();
        self.list().await?;
        *self.listed_since.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(began);
        Ok(())
    }

    async fn list(&self) -> EngineResult<()> {
        let info = self.engine.info().await?;
        let began = self.writer.listing_started();
        let listing = self.engine.list_containers(&ListQuery { all: true, ..Default::default() }).await?;
        self.writer.replace(began, listing);
        let manager = info.swarm == SwarmRole::Manager;
        self.writer.set_engine(info);
        if manager {
            self.poll_swarm().await
        } else {
            self.writer.replace_services(Vec::new(), Vec::new());
            Ok(())
        }
    }

    /// Reads the services, their tasks and the nodes again (managers only).
    async fn poll_swarm(&self) -> EngineResult<()> {
        let (services, nodes) = tokio::try_join!(self.services(), self.engine.list_nodes())?;
        self.writer.replace_services(services, nodes);
        Ok(())
    }

    async fn services(&self) -> EngineResult<Vec<SwarmService>> {
        let scope = self.writer.scope();
        let mut filter: Vec<String> = scope.selector.iter().map(|s| s.filter()).collect();
        if !scope.allow_all {
            filter.push(format!("{}=true", labels::ENABLE));
        }
        // One listing of every task, whatever the number of services.
        let (listed, tasks) = tokio::try_join!(self.engine.list_services(&filter), self.engine.list_tasks(None))?;
        let mut by_service: std::collections::HashMap<String, Vec<_>> = std::collections::HashMap::new();
        for task in tasks {
            by_service.entry(task.service_id.clone()).or_default().push(task);
        }
        let services = listed
            .into_iter()
            .map(|details| SwarmService { tasks: by_service.remove(&details.id).unwrap_or_default(), details })
            .collect();
        Ok(services)
    }

    /// Applies events until the stream ends or fails, re-listing every `resync`.
    async fn follow(&self, mut events: BoxStream<'static, EngineResult<ContainerEvent>>, cancel: &CancellationToken) {
        let mut resync_at = Instant::now() + self.resync;
        let mut swarm_at = Instant::now() + self.swarm_poll;
        let mut rechecks: Vec<(Instant, String)> = Vec::new();
        loop {
            let manager = self.writer.engine().is_some_and(|e| e.swarm == SwarmRole::Manager);
            let due = if manager { resync_at.min(swarm_at) } else { resync_at };
            let next_look = rechecks.iter().map(|(at, _)| *at).min().map_or(due, |at| at.min(due));
            tokio::select! {
                event = events.next() => match event {
                    Some(Ok(event)) => {
                        if let Some(id) = self.apply(&event).await {
                            rechecks.push((Instant::now() + SETTLE, id));
                        }
                    }
                    Some(Err(e)) => return warn!(error = %e, "engine event stream interrupted; re-listing"),
                    None => return debug!("engine event stream ended; re-listing"),
                },
                () = tokio::time::sleep_until(next_look) => {
                    let now = Instant::now();
                    let due: Vec<String> = rechecks.iter().filter(|(at, _)| *at <= now).map(|(_, id)| id.clone()).collect();
                    rechecks.retain(|(at, _)| *at > now);
                    for id in due {
                        self.refresh(&id).await;
                    }
                    if now >= resync_at {
                        if let Err(e) = self.list().await {
                            return warn!(error = %e, "periodic re-listing failed");
                        }
                        resync_at = Instant::now() + self.resync;
                        swarm_at = Instant::now() + self.swarm_poll;
                    } else if manager && now >= swarm_at {
                        if let Err(e) = self.poll_swarm().await {
                            warn!(error = %e, "cannot read the swarm's services; keeping the last reading");
                        }
                        swarm_at = Instant::now() + self.swarm_poll;
                    }
                }
                () = cancel.cancelled() => return,
            }
        }
    }

    /// Applies one event; returns a container to look at again once the
    /// engine has settled (it reports `die` before its state says so).
    async fn apply(&self, event: &ContainerEvent) -> Option<String> {
        let action = event.action.as_str();
        let relevant = self.relevant(event);
        match action {
            "destroy" => self.writer.forget(&event.id),
            "rename" if !relevant => {
                if let Some(name) = event.attributes.get("name") {
                    self.writer.rename(&event.id, name);
                }
            }
            "create" if !relevant => self.writer.record(ContainerSummary {
                id: event.id.clone(),
                name: event.attributes.get("name").cloned().unwrap_or_default(),
                state: RunState::Created,
                created: event.time_nano / 1_000_000_000,
                ..Default::default()
            }),
            _ if !relevant || !changes_state(action) => return None,
            _ => {
                let state = self.refresh(&event.id).await;
                if let Some(service) = event.attributes.get(labels::SWARM_SERVICE_ID) {
                    self.refresh_service(service).await;
                }
                let settled = !matches!(action, "die" | "kill" | "stop") || state != Some(RunState::Running);
                return (!settled).then(|| event.id.clone());
            }
        }
        None
    }

    /// Whether the container matters beyond its name.
    fn relevant(&self, event: &ContainerEvent) -> bool {
        let a = &event.attributes;
        self.writer.scope().allow_all
            || super::may_be_member(a)
            || a.contains_key(labels::SOURCE)
            || a.contains_key(labels::SWARM_SERVICE_ID)
    }

    /// Reads one container again; `None` when it is gone.
    async fn refresh(&self, id: &str) -> Option<RunState> {
        match self.engine.inspect_container(id).await {
            Ok(details) => {
                let state = details.state;
                self.writer.record(details.summary());
                Some(state)
            }
            Err(e) if e.is_not_found() => {
                self.writer.forget(id);
                None
            }
            Err(e) => {
                debug!(container = id, error = %e, "cannot inspect after an event; the next listing repairs it");
                None
            }
        }
    }

    /// Reads one Swarm service and its tasks again.
    pub async fn refresh_service(&self, id: &str) {
        let Some(info) = self.writer.engine() else { return };
        if info.swarm != SwarmRole::Manager {
            return;
        }
        match read_service(self.engine.as_ref(), id).await {
            Ok(service) => {
                let scope = self.writer.scope();
                if scope.selects(&service.details.labels) && scope.enabled(&service.details.labels) {
                    self.writer.update_service(service);
                }
            }
            Err(e) => debug!(service = id, error = %e, "cannot read a service after an event"),
        }
    }
}

/// One Swarm service and its tasks, as the inventory keeps them.
pub async fn read_service(engine: &dyn Engine, id: &str) -> EngineResult<SwarmService> {
    let details = engine.inspect_service(id).await?;
    let tasks = engine.list_tasks(Some(id)).await?;
    Ok(SwarmService { details, tasks })
}

/// Events that can change what a listing would say about a container.
fn changes_state(action: &str) -> bool {
    matches!(
        action,
        "create" | "start" | "restart" | "die" | "kill" | "stop" | "pause" | "unpause" | "rename" | "update"
    ) || action.starts_with("health_status")
}

/// Sleeps; true when cancelled meanwhile.
async fn sleep_or_cancel(duration: Duration, cancel: &CancellationToken) -> bool {
    tokio::select! {
        () = tokio::time::sleep(duration) => false,
        () = cancel.cancelled() => true,
    }
}

/// The instant events are asked for from, before a listing.
fn replay_from() -> i64 {
    crate::base::clock::unix_nanos_now().saturating_sub(REPLAY.as_nanos() as i64)
}
