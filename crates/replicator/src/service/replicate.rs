//! Replicating a container: inspect, check policy and limit, reserve names,
//! then create, connect and start each clone, rolling back on any failure.

use std::collections::HashSet;

use serde::Serialize;
use tracing::{info, warn};

use super::reservation::Reservation;
use super::Replicator;
use crate::engine::EngineError;
use crate::error::{Error, Result};
use crate::group::{self, Bounds, GroupIdentity, GroupKind};
use crate::id::ContainerRef;
use crate::labels;
use crate::model::{ContainerDetails, ContainerSummary, ListQuery};
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

/// A container ready to be cloned, with the rules that apply to it.
struct Source {
    details: ContainerDetails,
    group: GroupIdentity,
    bounds: Bounds,
}

impl Replicator {
    /// Creates `count` clones of `target`, all or nothing.
    ///
    /// The work runs in its own task: a caller that goes away (a client
    /// disconnecting) cannot stop it half-way between create and start.
    pub async fn replicate(
        &self,
        target: &ContainerRef,
        count: u32,
        caller: &str,
    ) -> Result<Replication> {
        if count == 0 || count > MAX_COUNT {
            return Err(Error::BadRequest(format!(
                "count must be between 1 and {MAX_COUNT}"
            )));
        }
        let this = self.clone();
        let target = target.clone();
        let caller = caller.to_owned();
        tokio::spawn(async move { this.replicate_now(&target, count, &caller).await })
            .await
            .map_err(|e| Error::Internal(format!("replication task failed: {e}")))?
    }

    async fn replicate_now(
        &self,
        target: &ContainerRef,
        count: u32,
        caller: &str,
    ) -> Result<Replication> {
        let source = self.source(target).await?;
        let tag_image_id = self.tag_image_id(&source.details).await?;
        let mut reservation = self.reserve(&source, count).await?;
        let mut replicas = Vec::with_capacity(count as usize);
        let mut notes = Vec::new();
        for index in 0..count as usize {
            let outcome = self
                .clone_one(&source, tag_image_id.as_deref(), &mut reservation, index)
                .await;
            match outcome {
                Ok((replica, mut n)) => {
                    info!(group = %source.group.name, source = %source.details.id, replica = %replica.id,
                          name = %replica.name, caller, "replica started");
                    replicas.push(replica);
                    notes.append(&mut n);
                }
                Err(e) => {
                    self.roll_back(&replicas).await;
                    warn!(group = %source.group.name, source = %source.details.id, caller, error = %e, "replication failed");
                    return Err(e);
                }
            }
        }
        notes.dedup();
        Ok(Replication {
            source: source.details.id,
            group: source.group.name,
            replicas,
            notes,
        })
    }

    /// Inspects the target and applies the policy: opt-in, never ourselves, limits readable.
    async fn source(&self, target: &ContainerRef) -> Result<Source> {
        let details = self
            .engine()
            .inspect_container(target.as_str())
            .await
            .map_err(|e| match e {
                EngineError::NotFound(_) => Error::ContainerNotFound(target.to_string()),
                e => e.into(),
            })?;
        if self.settings().self_id.as_deref() == Some(details.id.as_str()) {
            return Err(Error::Forbidden(
                "replicator does not replicate its own container".into(),
            ));
        }
        if !self.settings().allow_all && !labels::is_true(details.label(labels::ENABLE)) {
            return Err(Error::NotEnabled(target.to_string()));
        }
        let group = group::identify(&details);
        if group.kind == GroupKind::Swarm {
            return Err(Error::Conflict(format!(
                "container {target} is a Swarm task: scale its service instead (docker service scale)"
            )));
        }
        let bounds = group::bounds(&details.labels(), self.settings().default_max)
            .map_err(Error::Conflict)?;
        Ok(Source {
            details,
            group,
            bounds,
        })
    }

    /// What the source's image tag points at now (see the planner's image rule).
    async fn tag_image_id(&self, source: &ContainerDetails) -> Result<Option<String>> {
        match source.config.get("Image").and_then(|v| v.as_str()) {
            Some(tag) if !tag.is_empty() && !tag.starts_with("sha256:") => {
                Ok(self.engine().image_id(tag).await?)
            }
            _ => Ok(None),
        }
    }

    /// Counts the group and reserves `count` places and names, or refuses at the limit.
    async fn reserve(&self, source: &Source, count: u32) -> Result<Reservation> {
        let slot = self.inner.slots.slot(&source.group.name);
        let _admitted = slot.admit().await;
        let (members, taken) = tokio::try_join!(
            self.live_members(source),
            self.names_in_use(&source.group.base_name)
        )?;
        let pending = slot.pending();
        let settled = members
            .iter()
            .filter(|m| !pending.contains(&m.name))
            .count();
        let size = settled + pending.len();
        if size + count as usize > source.bounds.max as usize {
            return Err(Error::LimitReached {
                group: source.group.name.clone(),
                max: source.bounds.max,
            });
        }
        let mut taken: HashSet<String> = taken.into_iter().chain(pending).collect();
        let names = (0..count)
            .map(|_| {
                let name = group::next_replica_name(&source.group.base_name, &taken);
                taken.insert(name.clone());
                name
            })
            .collect();
        Ok(slot.reserve(names))
    }

    /// Members that hold a place in the group: the original and every live
    /// container labelled with the group's name.
    async fn live_members(&self, source: &Source) -> Result<Vec<ContainerSummary>> {
        let query = ListQuery {
            all: true,
            labels: vec![format!("{}={}", labels::GROUP, source.group.name)],
            ..Default::default()
        };
        let mut members: Vec<_> = self
            .engine()
            .list_containers(&query)
            .await?
            .into_iter()
            .filter(|c| c.state.is_live())
            .collect();
        let original = &source.group.original_id;
        if !members.iter().any(|m| &m.id == original) {
            if let Some(o) = self.original_summary(source).await? {
                members.push(o);
            }
        }
        Ok(members)
    }

    async fn original_summary(&self, source: &Source) -> Result<Option<ContainerSummary>> {
        let original = &source.group.original_id;
        let details = if *original == source.details.id {
            source.details.clone()
        } else {
            match self.engine().inspect_container(original).await {
                Ok(d) => d,
                Err(EngineError::NotFound(_)) => return Ok(None),
                Err(e) => return Err(e.into()),
            }
        };
        Ok(details.state.is_live().then(|| ContainerSummary {
            id: details.id.clone(),
            name: details.name.clone(),
            state: details.state,
            labels: details.labels(),
            created: 0,
        }))
    }

    /// Names (of any container, in any state) that a new `<base>-<n>` must avoid.
    async fn names_in_use(&self, base: &str) -> Result<Vec<String>> {
        let query = ListQuery {
            all: true,
            name: Some(base.to_owned()),
            ..Default::default()
        };
        Ok(self
            .engine()
            .list_containers(&query)
            .await?
            .into_iter()
            .map(|c| c.name)
            .collect())
    }

    /// Create, connect, start one clone; remove it again if any step fails.
    async fn clone_one(
        &self,
        source: &Source,
        tag_image_id: Option<&str>,
        reservation: &mut Reservation,
        index: usize,
    ) -> Result<(Replica, Vec<String>)> {
        let mut name = reservation.names()[index].clone();
        let mut attempts = 0;
        loop {
            let plan = plan::plan_clone(
                &source.details,
                &CloneSpec {
                    name: &name,
                    group: &source.group.name,
                    original_id: &source.group.original_id,
                    tag_image_id,
                    keep_host_ports: self.settings().keep_host_ports,
                    extra_labels: Default::default(),
                },
            );
            let id = match self.engine().create_container(&plan.create).await {
                Ok(id) => id,
                Err(EngineError::Conflict(_)) if attempts < NAME_RETRIES => {
                    attempts += 1;
                    let base = &source.group.base_name;
                    let in_use: HashSet<String> =
                        self.names_in_use(base).await?.into_iter().collect();
                    name = reservation.rename(&name, |pending| {
                        group::next_replica_name(base, &in_use.union(pending).cloned().collect())
                    });
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

    async fn connect_and_start(
        &self,
        id: &str,
        networks: &[crate::model::NetworkAttachment],
    ) -> Result<()> {
        for network in networks {
            self.engine().connect_network(id, network).await?;
        }
        self.engine().start_container(id).await?;
        Ok(())
    }

    async fn roll_back(&self, replicas: &[Replica]) {
        for r in replicas {
            self.remove_quietly(&r.id).await;
        }
    }

    /// Rollback must not hide the error that caused it; a failed removal is logged.
    pub(super) async fn remove_quietly(&self, id: &str) {
        if let Err(e) = self.engine().remove_container(id).await {
            warn!(container = %id, error = %e, "could not remove a container during rollback");
        }
    }
}
