//! Group membership and the group views the API lists.
//!
//! A group's members are its original and every container labelled with its
//! name; for compose, the containers of one project and service; for Swarm,
//! the tasks of one service.

use std::collections::BTreeMap;

use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::Replicator;
use crate::autoscale::policy::{self, Policy};
use crate::autoscale::store::{AutoscaleView, Board, DecisionView};
use crate::error::{Error, Result};
use crate::group::{self, Bounds, GroupIdentity, GroupKind};
use crate::labels;
use crate::model::{ContainerSummary, ListQuery, RunState};

/// A group as the API shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct GroupView {
    pub name: String,
    pub kind: GroupKind,
    /// Running members.
    pub replicas: usize,
    pub min: u32,
    pub max: u32,
    pub members: Vec<MemberView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub autoscale: Option<AutoscaleView>,
    /// The policy behind `autoscale`, for the autoscaler.
    #[serde(skip)]
    pub policy: Option<Result<Policy, String>>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct MemberView {
    pub id: String,
    pub name: String,
    pub state: RunState,
    pub original: bool,
    /// RFC 3339.
    pub created: String,
}

/// A container group as found in the engine.
#[derive(Debug, Clone)]
pub(super) struct GroupState {
    pub identity: GroupIdentity,
    pub bounds: Bounds,
    pub members: Vec<Member>,
    pub policy: Option<Result<Policy, String>>,
}

impl GroupState {
    fn into_view(self, board: &Board, dry_run: bool) -> GroupView {
        let mut v = view(&self.identity, self.bounds, self.members);
        v.autoscale = self.policy.as_ref().map(|p| board.view(&v.name, p, v.replicas, dry_run));
        v.policy = self.policy;
        v
    }
}

/// A member container as listed, and whether it is an original.
#[derive(Debug, Clone)]
pub(super) struct Member {
    pub container: ContainerSummary,
    pub original: bool,
}

impl Replicator {
    /// Every group with at least one enabled member, by name.
    pub async fn groups(&self) -> Result<Vec<GroupView>> {
        let (mut groups, services) = tokio::try_join!(self.container_groups(), self.swarm_groups())?;
        groups.extend(services);
        groups.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(groups)
    }

    /// The group's recent autoscaling decisions, oldest first.
    pub async fn decisions(&self, name: &str) -> Result<Vec<DecisionView>> {
        self.group(name).await?;
        Ok(self.board().history(name))
    }

    pub async fn group(&self, name: &str) -> Result<GroupView> {
        self.groups().await?.into_iter().find(|g| g.name == name).ok_or_else(|| Error::GroupNotFound(name.to_owned()))
    }

    async fn container_groups(&self) -> Result<Vec<GroupView>> {
        let states = self.container_group_states().await?;
        let dry_run = self.settings().autoscale_dry_run;
        Ok(states.into_iter().map(|s| s.into_view(self.board(), dry_run)).collect())
    }

    /// Groups of plain and compose containers, from two listings.
    pub(super) async fn container_group_states(&self) -> Result<Vec<GroupState>> {
        let by_label = |label: &str| ListQuery { all: true, labels: self.managed_filter(label), ..Default::default() };
        let (enabled, labelled) = (by_label(labels::ENABLE), by_label(labels::GROUP));
        let (enabled, labelled) =
            tokio::try_join!(self.engine().list_containers(&enabled), self.engine().list_containers(&labelled))?;
        let mut unique: BTreeMap<String, ContainerSummary> = BTreeMap::new();
        for c in enabled.into_iter().chain(labelled) {
            if !c.labels.contains_key(labels::SWARM_SERVICE_ID) && !group::is_compose_oneoff(&c.labels) {
                unique.insert(c.id.clone(), c);
            }
        }
        let mut buckets: BTreeMap<String, (GroupIdentity, Vec<ContainerSummary>)> = BTreeMap::new();
        for c in unique.into_values() {
            let identity = group::identify(&c.id, &c.name, &c.labels);
            buckets.entry(identity.name.clone()).or_insert_with(|| (identity, Vec::new())).1.push(c);
        }
        Ok(buckets
            .into_values()
            .filter(|(_, members)| members.iter().any(|m| self.is_enabled(&m.labels)))
            .map(|(identity, members)| {
                let members = mark_originals(&identity, members);
                let bounds = self.bounds_of(&members);
                let labels = members.iter().find(|m| m.original).or(members.first()).map(|m| &m.container.labels);
                let policy = labels.and_then(|l| policy::read(l, bounds).transpose());
                GroupState { identity, bounds, members, policy }
            })
            .collect())
    }

    fn is_enabled(&self, labels: &BTreeMap<String, String>) -> bool {
        self.settings().allow_all || labels::is_true(labels.get(labels::ENABLE).map(String::as_str))
    }

    /// Bounds from the original's labels (replicas carry copies of them).
    pub(super) fn bounds_of(&self, members: &[Member]) -> Bounds {
        let labels = members.iter().find(|m| m.original).or(members.first()).map(|m| &m.container.labels);
        let default = Bounds { min: 1, max: self.settings().default_max };
        labels.and_then(|l| group::bounds(l, default.max).ok()).unwrap_or(default)
    }

    /// Every member of a container group, in any state.
    pub(super) async fn members_of(&self, identity: &GroupIdentity) -> Result<Vec<ContainerSummary>> {
        let engine = self.engine();
        let list = |labels: Vec<String>, id: Option<String>| ListQuery { all: true, labels, id, ..Default::default() };
        let mut members = match &identity.naming {
            group::Naming::Compose { project, service, .. } if identity.kind == GroupKind::Compose => {
                let labels = vec![
                    format!("{}={project}", labels::COMPOSE_PROJECT),
                    format!("{}={service}", labels::COMPOSE_SERVICE),
                ];
                let all = engine.list_containers(&list(labels, None)).await?;
                all.into_iter().filter(|c| !group::is_compose_oneoff(&c.labels)).collect()
            }
            _ => engine.list_containers(&list(vec![format!("{}={}", labels::GROUP, identity.name)], None)).await?,
        };
        if identity.kind == GroupKind::Containers && !members.iter().any(|m| m.id == identity.original_id) {
            let original = engine.list_containers(&list(Vec::new(), Some(identity.original_id.clone()))).await?;
            members.extend(original.into_iter().filter(|o| o.id == identity.original_id));
        }
        Ok(members)
    }

    /// The group's members with originals marked.
    pub(super) async fn members(&self, identity: &GroupIdentity) -> Result<Vec<Member>> {
        Ok(mark_originals(identity, self.members_of(identity).await?))
    }
}

/// Originals: the container replicas point back to; for compose, every
/// container compose itself created.
fn mark_originals(identity: &GroupIdentity, members: Vec<ContainerSummary>) -> Vec<Member> {
    members
        .into_iter()
        .map(|c| {
            let original = match identity.kind {
                GroupKind::Compose => !c.labels.contains_key(labels::SOURCE),
                _ => c.id == identity.original_id,
            };
            Member { container: c, original }
        })
        .collect()
}

pub(super) fn rfc3339(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix).ok().and_then(|t| t.format(&Rfc3339).ok()).unwrap_or_default()
}

fn view(identity: &GroupIdentity, bounds: Bounds, mut members: Vec<Member>) -> GroupView {
    members.sort_by(|a, b| (a.container.created, &a.container.name).cmp(&(b.container.created, &b.container.name)));
    GroupView {
        name: identity.name.clone(),
        kind: identity.kind,
        replicas: members.iter().filter(|m| m.container.state == RunState::Running).count(),
        min: bounds.min,
        max: bounds.max,
        members: members
            .into_iter()
            .map(|m| MemberView {
                id: m.container.id,
                name: m.container.name,
                state: m.container.state,
                original: m.original,
                created: rfc3339(m.container.created),
            })
            .collect(),
        autoscale: None,
        policy: None,
    }
}
