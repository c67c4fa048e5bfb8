//! Growing a group: the clones admission made room for, created, connected
//! and started, all or nothing: on any failure every clone of the request
//! is removed and promoted standbys go back to the pool.

use futures_util::future::join_all;
use tracing::{info, warn};

use super::admission::Admitted;
use super::capacity::{How, Phase};
use super::core::Core;
use super::pool::Pool;
use super::replica::{Replica, Replication};
use super::source::Source;
use crate::base::clock;
use crate::error::{Error, Result};
use crate::inventory::Reservation;
use crate::model::{labels_of, ContainerDetails, ContainerSummary, CreateRequest, NetworkAttachment, RunState};
use crate::rules::labels;
use crate::rules::plan::{self, ClonePlan, CloneSpec};

/// Clones of one request created (then started) at the same time: as fast
/// as the engine allows, without flooding it.
const PARALLEL: usize = 16;
/// How often a create is retried under a new name when the name was taken meanwhile.
const NAME_RETRIES: usize = 5;

/// Makes new members.
pub(super) struct Growth<'a>(pub &'a Core);

impl Growth<'_> {
    /// The second half: creates the reserved replicas cold; all or nothing,
    /// so on failure the promoted standbys go back to the pool.
    pub async fn grow(&self, source: &Source, admitted: Admitted, caller: &str) -> Result<Replication> {
        let Admitted { promoted, reservation } = admitted;
        let mut replication = if reservation.count() == 0 {
            Replication { source: source.details.id.clone(), group: source.group.name.clone(), ..Default::default() }
        } else {
            match self.create(source, reservation, caller).await {
                Ok(made) => made,
                Err(e) => {
                    Pool(self.0).demote(&promoted).await;
                    return Err(e);
                }
            }
        };
        replication.replicas.splice(0..0, promoted);
        Ok(replication)
    }

    /// Creates one replica per reserved name, all or nothing: every clone
    /// is created first, then each is connected and started (up to
    /// [`PARALLEL`] at a time in each phase, all or nothing still). A replicator
    /// killed half-way leaves either only never-started clones, or clones of
    /// a request one of which was never started: either way the reconcile
    /// pass of the next start removes the whole request.
    pub async fn create(&self, source: &Source, reservation: Reservation, caller: &str) -> Result<Replication> {
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
        self.0.capacity.phase(&replica.id, Phase::Start, began.elapsed());
        // Its addresses exist only now: a member must not be announced ready
        // to the balancers before they can route to it.
        match self.0.engine.inspect_container(&replica.id).await {
            Ok(details) => self.0.intents.inspected(details.summary()),
            Err(_) => self.0.intents.observe(summary_of(&replica.id, &plan.create, RunState::Running)),
        }
        self.0.capacity.watch_until_ready(&replica.id);
        info!(group = %source.group.name, source = %source.details.id, replica = %replica.id,
              name = %replica.name, caller, "replica started");
        Ok(())
    }

    /// Removes every clone of a failed request and hands back the failure.
    async fn roll_back(&self, source: &Source, made: &[(Replica, ClonePlan)], caller: &str, e: Error) -> Error {
        for (replica, _) in made {
            self.0.remove_quietly(&replica.id).await;
            self.0.intents.set_warming(&replica.id, false);
        }
        warn!(group = %source.group.name, source = %source.details.id, caller, error = %e, "replication failed");
        e
    }

    /// What the source's image tag points at now (see the planner's image rule).
    async fn tag_image_id(&self, source: &ContainerDetails) -> Result<Option<String>> {
        match source.config.get("Image").and_then(|v| v.as_str()) {
            Some(tag) if !tag.is_empty() && !tag.starts_with("sha256:") => Ok(self.0.engine.image_id(tag).await?),
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
                keep_host_ports: self.0.settings.keep_host_ports,
                extra_labels,
            };
            let plan = plan::plan_clone(&source.details, &spec);
            let began = tokio::time::Instant::now();
            match self.0.engine.create_container(&plan.create).await {
                Ok(id) => {
                    if reservation.standby() {
                        // Never a member, not even between its start and its pause.
                        self.0.intents.set_warming(&id, true);
                    } else {
                        self.0.capacity.began(&source.group.name, &id, &name, How::Cold);
                        self.0.capacity.phase(&id, Phase::Create, began.elapsed());
                    }
                    reservation.created(index, &id);
                    self.0.intents.observe(summary_of(&id, &plan.create, RunState::Created));
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
            self.0.engine.connect_network(id, network).await?;
        }
        self.0.engine.start_container(id).await?;
        Ok(())
    }
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
