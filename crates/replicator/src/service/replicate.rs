//! Replicating a container: inspect, check policy and limit, reserve names,
//! then create, connect and start each clone, rolling back on any failure.

use std::collections::HashSet;

use serde::Serialize;
use tracing::{info, warn};

use super::reservation::{GroupSlot, Reservation};
use super::{detached, Replicator};
use crate::engine::EngineError;
use crate::error::{Error, Result};
use crate::group::{self, Bounds, GroupIdentity};
use crate::id::ContainerRef;
use crate::labels;
use crate::model::{ContainerDetails, ListQuery, NetworkAttachment};
use crate::plan::{self, CloneSpec};

/// Most replicas one request may ask for; the group limit usually binds first.
pub const MAX_COUNT: u32 = 100;
/// How often a create is retried under a new name when the name was taken meanwhile.
const NAME_RETRIES: usize = 5;

/// The answer to a replication.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Replication {
    /// Full id of the container that was replicated.
    pub source: String,
    pub group: String,
    pub replicas: Vec<Replica>,
    /// What differs from the source and why (ephemeral host ports...).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Replica {
    pub id: String,
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
    /// service is scaled instead.
    pub async fn replicate(&self, target: &ContainerRef, count: u32, caller: &str) -> Result<Replication> {
        if count == 0 || count > MAX_COUNT {
            return Err(Error::BadRequest(format!("count must be between 1 and {MAX_COUNT}")));
        }
        let (this, target, caller) = (self.clone(), target.clone(), caller.to_owned());
        let started = std::time::Instant::now();
        let result = detached(async move { this.replicate_now(&target, count, &caller).await }).await;
        let group = result.as_ref().map(|r| r.group.as_str()).unwrap_or_default();
        self.telemetry().replication(group, outcome(&result), started.elapsed().as_secs_f64());
        result
    }

    async fn replicate_now(&self, target: &ContainerRef, count: u32, caller: &str) -> Result<Replication> {
        let details = self.inspect_target(target).await?;
        if let Some(service_id) = details.label(labels::SWARM_SERVICE_ID) {
            return self.replicate_task(&details.id, service_id, count, caller).await;
        }
        self.check_selected(&format!("container {target}"), &details.labels())?;
        if !self.settings().allow_all && !labels::is_true(details.label(labels::ENABLE)) {
            return Err(Error::NotEnabled(target.to_string()));
        }
        let source = self.source_from(details)?;
        let slot = self.inner.slots.slot(&source.group.name);
        let reservation = {
            let _admitted = slot.admit().await;
            self.reserve(&slot, &source, count).await?
        };
        let replicas = self.create_replicas(&source, reservation, caller).await?;
        Ok(replicas)
    }

    /// The container the caller named; a 404 here means the caller's container.
    async fn inspect_target(&self, target: &ContainerRef) -> Result<ContainerDetails> {
        let details = self.engine().inspect_container(target.as_str()).await.map_err(|e| match e {
            EngineError::NotFound(_) => Error::ContainerNotFound(target.to_string()),
            e => e.into(),
        })?;
        if self.settings().self_id.as_deref() == Some(details.id.as_str()) {
            return Err(Error::Forbidden("replicator does not replicate its own container".into()));
        }
        Ok(details)
    }

    /// Resolves the caller's container and the group it belongs to, for callers
    /// other than replication (metric pushes).
    pub(super) async fn inspect_for_caller(&self, target: &ContainerRef) -> Result<ContainerDetails> {
        self.inspect_target(target).await
    }

    pub(super) fn source_from(&self, details: ContainerDetails) -> Result<Source> {
        let labels = details.labels();
        let group = group::identify(&details.id, &details.name, &labels);
        let bounds = group::bounds(&labels, self.settings().default_max).map_err(Error::Conflict)?;
        Ok(Source { details, group, bounds })
    }

    /// Counts the group and reserves `count` places and names, or refuses at
    /// the limit. The caller holds the group's admission.
    pub(super) async fn reserve(
        &self,
        slot: &std::sync::Arc<GroupSlot>,
        source: &Source,
        count: u32,
    ) -> Result<Reservation> {
        let (members, taken) = tokio::try_join!(self.members_of(&source.group), self.names_in_use(&source.group))?;
        let pending = slot.pending();
        let settled = members.iter().filter(|m| m.state.is_live() && !pending.contains(&m.name)).count();
        if settled + pending.len() + count as usize > source.bounds.max as usize {
            return Err(Error::LimitReached { group: source.group.name.clone(), max: source.bounds.max });
        }
        let mut taken: HashSet<String> = taken.into_iter().chain(pending).collect();
        let names = (0..count)
            .map(|_| {
                let name = source.group.naming.next_free(&taken);
                taken.insert(name.clone());
                name
            })
            .collect();
        Ok(slot.reserve(names))
    }

    /// Names (of any container, in any state) a new replica name must avoid.
    async fn names_in_use(&self, group: &GroupIdentity) -> Result<HashSet<String>> {
        let query = ListQuery { all: true, name: Some(group.naming.stem()), ..Default::default() };
        Ok(self.engine().list_containers(&query).await?.into_iter().map(|c| c.name).collect())
    }

    /// Creates one replica per reserved name; all or nothing.
    pub(super) async fn create_replicas(
        &self,
        source: &Source,
        mut reservation: Reservation,
        caller: &str,
    ) -> Result<Replication> {
        let tag_image_id = self.tag_image_id(&source.details).await?;
        let mut replicas = Vec::new();
        let mut notes = Vec::new();
        for index in 0..reservation.names().len() {
            match self.clone_one(source, tag_image_id.as_deref(), &mut reservation, index).await {
                Ok((replica, mut n)) => {
                    info!(group = %source.group.name, source = %source.details.id, replica = %replica.id,
                          name = %replica.name, caller, "replica started");
                    replicas.push(replica);
                    notes.append(&mut n);
                }
                Err(e) => {
                    for r in &replicas {
                        self.remove_quietly(&r.id).await;
                    }
                    warn!(group = %source.group.name, source = %source.details.id, caller, error = %e, "replication failed");
                    return Err(e);
                }
            }
        }
        notes.dedup();
        Ok(Replication { source: source.details.id.clone(), group: source.group.name.clone(), replicas, notes })
    }

    /// What the source's image tag points at now (see the planner's image rule).
    async fn tag_image_id(&self, source: &ContainerDetails) -> Result<Option<String>> {
        match source.config.get("Image").and_then(|v| v.as_str()) {
            Some(tag) if !tag.is_empty() && !tag.starts_with("sha256:") => Ok(self.engine().image_id(tag).await?),
            _ => Ok(None),
        }
    }

    /// Create, connect, start one clone; remove it again if any step fails.
    async fn clone_one(
        &self,
        source: &Source,
        tag_image_id: Option<&str>,
        reservation: &mut Reservation,
        index: usize,
    ) -> Result<(Replica, Vec<String>)> {
        let naming = &source.group.naming;
        let mut name = reservation.names()[index].clone();
        let mut retries = 0;
        loop {
            let spec = CloneSpec {
                name: &name,
                group: &source.group.name,
                original_id: &source.group.original_id,
                tag_image_id,
                keep_host_ports: self.settings().keep_host_ports,
                extra_labels: naming.labels_for(&name),
            };
            let plan = plan::plan_clone(&source.details, &spec);
            let id = match self.engine().create_container(&plan.create).await {
                Ok(id) => id,
                Err(EngineError::Conflict(_)) if retries < NAME_RETRIES => {
                    // Someone else took the name since we listed: take the next free one.
                    retries += 1;
                    let in_use = self.names_in_use(&source.group).await?;
                    name = reservation
                        .rename(&name, |pending| naming.next_free(&in_use.union(pending).cloned().collect()));
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            if let Err(e) = self.connect_and_start(&id, &plan.connect).await {
                self.remove_quietly(&id).await;
                return Err(e);
            }
            return Ok((Replica { id, name }, plan.notes));
        }
    }

    async fn connect_and_start(&self, id: &str, networks: &[NetworkAttachment]) -> Result<()> {
        for network in networks {
            self.engine().connect_network(id, network).await?;
        }
        self.engine().start_container(id).await?;
        Ok(())
    }

    /// Rollback must not hide the error that caused it; a failed removal is logged.
    pub(super) async fn remove_quietly(&self, id: &str) {
        if let Err(e) = self.engine().remove_container(id).await {
            warn!(container = %id, error = %e, "could not remove a container during rollback");
        }
    }
}

/// A short name for the replication outcome, for metrics.
fn outcome(result: &Result<Replication>) -> &'static str {
    match result {
        Ok(_) => "created",
        Err(Error::LimitReached { .. }) => "limit",
        Err(Error::EngineRejected(_) | Error::EngineUnavailable(_) | Error::Internal(_)) => "failed",
        Err(_) => "refused",
    }
}
