//! Replicating a container: inspect it, check policy and the group's bounds,
//! reserve places and names in the inventory, then create, connect and
//! start each clone, rolling back on any failure.

use futures_util::future::join_all;
use serde::Serialize;
use tracing::{info, warn};

use super::capacity::{How, Phase};
use super::{detached, Caller, Replicator};
use crate::base::clock;
use crate::base::id::ContainerRef;
use crate::error::{Error, Result};
use crate::inventory::Reservation;
use crate::model::{labels_of, ContainerDetails, ContainerSummary, CreateRequest, NetworkAttachment, RunState};
use crate::rules::bounds::{self, Bounds, GroupIdentity};
use crate::rules::labels;
use crate::rules::plan::{self, ClonePlan, CloneSpec};

/// Most replicas one request may ask for; the group limit usually binds first.
pub const MAX_COUNT: u32 = 100;
/// Clones of one request created (then started) at the same time: as fast
/// as the engine allows, without flooding it.
const PARALLEL: usize = 16;
/// How often a create is retried under a new name when the name was taken meanwhile.
const NAME_RETRIES: usize = 5;

/// The answer to a replication.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Replication {
    /// Full id of the container that was replicated.
    pub source: String,
    /// The group the replicas joined.
    pub group: String,
    /// The replicas made.
    pub replicas: Vec<Replica>,
    /// What differs from the source and why (ephemeral host ports...).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// New members admitted to a group: standbys already unpaused, and the
/// places reserved for those still to be created.
pub(super) struct Admission {
    promoted: Vec<Replica>,
    reservation: Reservation,
}

impl Admission {
    /// How many replicas are to be created cold.
    pub(super) fn cold(&self) -> usize {
        self.reservation.count()
    }
}

/// One replica made.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Replica {
    /// Full container id.
    pub id: String,
    /// Container name.
    pub name: String,
}

/// A container to clone, with the group rules that apply to it.
pub(super) struct Source {
    pub details: ContainerDetails,
    pub group: GroupIdentity,
    pub bounds: Bounds,
}

impl Replicator {
    /// Creates `count` clones of `target`, all or nothing; a Swarm task's
    /// service is scaled instead. With `ready_within`, answers once every
    /// clone is ready, or removes them all when one is not in time.
    pub async fn replicate(
        &self,
        target: &ContainerRef,
        count: u32,
        caller: &Caller,
        ready_within: Option<std::time::Duration>,
    ) -> Result<Replication> {
        if count == 0 || count > MAX_COUNT {
            return Err(Error::BadRequest(format!("count must be between 1 and {MAX_COUNT}")));
        }
        let (this, target, caller) = (self.clone(), target.clone(), caller.clone());
        let started = std::time::Instant::now();
        let result = detached(async move {
            let replication = this.replicate_now(&target, count, &caller).await?;
            if let Some(within) = ready_within {
                this.all_ready_or_none(&replication.replicas, within).await?;
            }
            Ok(replication)
        })
        .await;
        let group = result.as_ref().map(|r| r.group.as_str()).unwrap_or_default();
        self.telemetry().replication(group, outcome(&result), started.elapsed().as_secs_f64());
        result
    }

    async fn replicate_now(&self, target: &ContainerRef, count: u32, caller: &Caller) -> Result<Replication> {
        let details = self.inspect_target(target).await?;
        if let Some(service_id) = details.label(labels::SWARM_SERVICE_ID) {
            let service_id = service_id.to_owned();
            return self.replicate_task(&details.id, &service_id, count, caller).await;
        }
        let labels = details.labels();
        self.check_selected(&format!("container {target}"), &labels)?;
        let enabled = labels::flag(&labels, labels::ENABLE, false).map_err(|e| Error::Conflict(e.to_string()))?;
        if !enabled && !self.inventory().scope().allow_all {
            return Err(Error::NotEnabled(target.to_string()));
        }
        let source = self.source_from(details).await?;
        caller.may_replicate(&source.group.name, target.as_str())?;
        let caller = caller.name.as_str();
        let admission = {
            // Only admission is under the group's lock: the reservation holds
            // the places while the clones are made.
            let _admitted = self.inner.locks.lock(&source.group.name).await;
            self.admit(&source, count as usize).await?
        };
        self.grow(&source, admission, caller).await
    }

    /// The first half of every scale-up: takes up to `count` ready standbys
    /// and reserves places for the rest, or refuses at the limit with the
    /// standbys paused back. The caller holds the group's lock.
    pub(super) async fn admit(&self, source: &Source, count: usize) -> Result<Admission> {
        let promoted = self.promote_standbys(source, count).await?;
        match self.reserve(source, count - promoted.len()) {
            Ok(reservation) => Ok(Admission { promoted, reservation }),
            Err(e) => {
                self.demote(&promoted).await;
                Err(e)
            }
        }
    }

    /// The second half: creates the reserved replicas cold; all or nothing,
    /// so on failure the promoted standbys go back to the pool.
    pub(super) async fn grow(&self, source: &Source, admission: Admission, caller: &str) -> Result<Replication> {
        let Admission { promoted, reservation } = admission;
        let mut replication = if reservation.count() == 0 {
            Replication { source: source.details.id.clone(), group: source.group.name.clone(), ..Default::default() }
        } else {
            match self.create_replicas(source, reservation, caller).await {
                Ok(made) => made,
                Err(e) => {
                    self.demote(&promoted).await;
                    return Err(e);
                }
            }
        };
        replication.replicas.splice(0..0, promoted);
        Ok(replication)
    }

    /// The container the caller named; a 404 here means the caller's container.
    pub(super) async fn inspect_target(&self, target: &ContainerRef) -> Result<ContainerDetails> {
        let details = self.engine().inspect_container(target.as_str()).await.map_err(|e| match e {
            e if e.is_not_found() => Error::ContainerNotFound(target.to_string()),
            e => e.into(),
        })?;
        if self.settings().self_id.as_deref() == Some(details.id.as_str()) {
            return Err(Error::Forbidden("replicator does not replicate its own container".into()));
        }
        Ok(details)
    }

    /// The source with its group's rules, as the inventory reads them for
    /// every consumer (the strictest bounds of the group's originals).
    pub(super) async fn source_from(&self, details: ContainerDetails) -> Result<Source> {
        let labels = details.labels();
        let identity = bounds::identify(&details.id, &details.name, &labels);
        bounds::check_group_name(&identity, &labels).map_err(Error::Conflict)?;
        // The engine may not have told the inventory about the source yet.
        self.intents().observe(details.summary());
        let bounds = match self.group(&identity.name).await {
            Ok(g) => g.bounds.map_err(|reason| Error::InvalidGroup { group: identity.name.clone(), reason })?,
            Err(Error::GroupNotFound(_)) => Bounds::from_labels(&labels, self.inventory().scope().default_max)
                .map_err(|reason| Error::InvalidGroup { group: identity.name.clone(), reason })?,
            Err(e) => return Err(e),
        };
        Ok(Source { details, group: identity, bounds })
    }

    /// Reserves `count` places and names, or refuses at the limit. The caller
    /// holds the group's lock.
    pub(super) fn reserve(&self, source: &Source, count: usize) -> Result<Reservation> {
        self.reserve_within_ceilings(source, &new_request_id(), count, false)
    }

    /// Creates one replica per reserved name, all or nothing: every clone
    /// is created first, then each is connected and started (up to
    /// [`PARALLEL`] at a time in each phase, all or nothing still). A replicator
    /// killed half-way leaves either only never-started clones, or clones of
    /// a request one of which was never started: either way the reconcile
    /// pass of the next start removes the whole request.
    pub(super) async fn create_replicas(
        &self,
        source: &Source,
        reservation: Reservation,
        caller: &str,
    ) -> Result<Replication> {
        let result = self.create_all(source, &reservation).await;
        let made = match result {
            Ok(made) => made,
            Err((made, e)) => return Err(self.roll_back(source, &made, caller, e).await),
        };
        for chunk in made.chunks(PARALLEL) {
            let started =
                join_all(chunk.iter().map(|(replica, plan)| self.start_one(source, replica, plan, caller))).await;
            if let Some(e) = started.into_iter().find_map(Result::err) {
                return Err(self.roll_back(source, &made, caller, e).await);
            }
        }
        let mut notes: Vec<String> = made.iter().flat_map(|(_, plan)| plan.notes.clone()).collect();
        notes.dedup();
        let replicas = made.into_iter().map(|(replica, _)| replica).collect();
        Ok(Replication { source: source.details.id.clone(), group: source.group.name.clone(), replicas, notes })
    }

    /// Creates every clone of the request (none started yet); on failure,
    /// the clones already created come back with the error.
    async fn create_all(
        &self,
        source: &Source,
        reservation: &Reservation,
    ) -> std::result::Result<Vec<(Replica, ClonePlan)>, (Vec<(Replica, ClonePlan)>, Error)> {
        let tag_image_id = self.tag_image_id(&source.details).await.map_err(|e| (Vec::new(), e))?;
        let tag = tag_image_id.as_deref();
        let indexes: Vec<usize> = (0..reservation.count()).collect();
        let mut made = Vec::new();
        let mut failure = None;
        for chunk in indexes.chunks(PARALLEL) {
            let results = join_all(chunk.iter().map(|index| self.create_one(source, tag, reservation, *index))).await;
            for result in results {
                match result {
                    Ok(created) => made.push(created),
                    Err(e) => failure = failure.or(Some(e)),
                }
            }
            if failure.is_some() {
                break;
            }
        }
        match failure {
            None => Ok(made),
            Some(e) => Err((made, e)),
        }
    }

    /// Connects and starts one created clone.
    async fn start_one(&self, source: &Source, replica: &Replica, plan: &ClonePlan, caller: &str) -> Result<()> {
        let began = tokio::time::Instant::now();
        self.connect_and_start(&replica.id, &plan.connect).await?;
        self.capacity_phase(&replica.id, Phase::Start, began.elapsed());
        // Its addresses exist only now: a member must not be announced ready
        // to the balancers before they can route to it.
        match self.engine().inspect_container(&replica.id).await {
            Ok(details) => self.intents().inspected(details.summary()),
            Err(_) => self.intents().observe(summary_of(&replica.id, &plan.create, RunState::Running)),
        }
        self.watch_until_ready(&replica.id);
        info!(group = %source.group.name, source = %source.details.id, replica = %replica.id,
              name = %replica.name, caller, "replica started");
        Ok(())
    }

    /// Removes every clone of a failed request and hands back the failure.
    async fn roll_back(&self, source: &Source, made: &[(Replica, ClonePlan)], caller: &str, e: Error) -> Error {
        for (replica, _) in made {
            self.remove_quietly(&replica.id).await;
            self.intents().set_warming(&replica.id, false);
        }
        warn!(group = %source.group.name, source = %source.details.id, caller, error = %e, "replication failed");
        e
    }

    /// What the source's image tag points at now (see the planner's image rule).
    async fn tag_image_id(&self, source: &ContainerDetails) -> Result<Option<String>> {
        match source.config.get("Image").and_then(|v| v.as_str()) {
            Some(tag) if !tag.is_empty() && !tag.starts_with("sha256:") => Ok(self.engine().image_id(tag).await?),
            _ => Ok(None),
        }
    }

    /// Creates one clone under its reserved name (the next free one if the
    /// name was taken meanwhile).
    async fn create_one(
        &self,
        source: &Source,
        tag_image_id: Option<&str>,
        reservation: &Reservation,
        index: usize,
    ) -> Result<(Replica, ClonePlan)> {
        let naming = &source.group.naming;
        let mut name = reservation.names()[index].clone();
        let mut retries = 0;
        loop {
            let mut extra_labels = naming.labels_for(&name);
            extra_labels.insert(labels::REQUEST.to_owned(), reservation.request().to_owned());
            extra_labels.insert(labels::REQUEST_SIZE.to_owned(), reservation.count().to_string());
            if reservation.standby() {
                extra_labels.insert(labels::STANDBY.to_owned(), "true".to_owned());
            }
            let spec = CloneSpec {
                name: &name,
                group: &source.group.name,
                original_id: &source.group.original_id,
                tag_image_id,
                keep_host_ports: self.settings().keep_host_ports,
                extra_labels,
            };
            let plan = plan::plan_clone(&source.details, &spec);
            let began = tokio::time::Instant::now();
            match self.engine().create_container(&plan.create).await {
                Ok(id) => {
                    if reservation.standby() {
                        // Never a member, not even between its start and its pause.
                        self.intents().set_warming(&id, true);
                    } else {
                        self.capacity_began(&source.group.name, &id, &name, How::Cold);
                        self.capacity_phase(&id, Phase::Create, began.elapsed());
                    }
                    reservation.created(index, &id);
                    self.intents().observe(summary_of(&id, &plan.create, RunState::Created));
                    return Ok((Replica { id, name }, plan));
                }
                Err(e) if e.is_conflict() && retries < NAME_RETRIES => {
                    // Someone else took the name since we looked: take the next free one.
                    retries += 1;
                    name = reservation.rename(index, naming);
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    async fn connect_and_start(&self, id: &str, networks: &[NetworkAttachment]) -> Result<()> {
        for network in networks {
            self.engine().connect_network(id, network).await?;
        }
        self.engine().start_container(id).await?;
        Ok(())
    }

    /// Waits until every replica is ready; if one is not within `within`
    /// (or turns unhealthy, or exits), removes them all.
    pub(super) async fn all_ready_or_none(&self, replicas: &[Replica], within: std::time::Duration) -> Result<()> {
        let ids: Vec<String> = replicas.iter().map(|r| r.id.clone()).collect();
        let Err(e) = self.wait_ready(&ids, within).await else { return Ok(()) };
        for id in &ids {
            self.remove_quietly(id).await;
        }
        warn!(error = %e, "replicas not ready in time; removed");
        Err(e)
    }

    /// Rollback must not hide the error that caused it; a failed removal is logged.
    pub(super) async fn remove_quietly(&self, id: &str) {
        match self.engine().remove_container(id).await {
            Ok(()) => self.intents().removed(id),
            Err(e) if e.is_not_found() => self.intents().removed(id),
            Err(e) => warn!(container = %id, error = %e, "could not remove a container during rollback"),
        }
    }
}

/// A request id unique to this process and this instant (labels tell the
/// replicas of one request apart from those of any other).
pub(super) fn new_request_id() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{:x}-{:x}-{n:x}", clock::unix_nanos_now(), std::process::id())
}

/// What replicator knows of a container it created, before the engine's events say more.
fn summary_of(id: &str, request: &CreateRequest, state: RunState) -> ContainerSummary {
    // A clone with a healthcheck (its own or its image's, both copied from
    // the source's inspect) is not ready until the engine says healthy.
    let checked =
        request.body.get("Healthcheck").and_then(|h| h.get("Test")).and_then(|t| t.get(0)).and_then(|t| t.as_str());
    let health = match checked {
        Some(kind) if kind != "NONE" => Some(crate::model::Health::Starting),
        _ => None,
    };
    ContainerSummary {
        id: id.to_owned(),
        name: request.name.clone(),
        state,
        labels: labels_of(&request.body),
        created: clock::unix_now(),
        health,
        ..Default::default()
    }
}

/// A short name for the replication outcome, for metrics.
fn outcome(result: &Result<Replication>) -> &'static str {
    match result {
        Ok(_) => "created",
        Err(Error::LimitReached { .. }) => "limit",
        Err(Error::Engine(_) | Error::Internal(_)) => "failed",
        Err(_) => "refused",
    }
}
