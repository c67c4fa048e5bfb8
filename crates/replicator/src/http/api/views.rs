//! The API's JSON shape of a group, built from the inventory's [`Group`]
//! and the autoscaler's word on it. Nothing else reads this type.

use serde::Serialize;

use crate::autoscale::board::AutoscaleView;
use crate::autoscale::{AutoscaleHandle, NodeView};
use crate::inventory::{Group, Member, MemberStatus};
use crate::rules::bounds::GroupKind;

/// A group as `GET /v1/groups` shows it.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct GroupView {
    /// The name the API addresses it by.
    pub name: String,
    /// `containers`, `compose` or `swarm`.
    pub kind: GroupKind,
    /// Running members.
    pub replicas: usize,
    /// At zero: its originals paused or stopped by replicator, woken by the next scale-up.
    pub asleep: bool,
    /// Fewest members (null while the group's labels are invalid).
    pub min: Option<u32>,
    /// Most members (null while the group's labels are invalid).
    pub max: Option<u32>,
    /// Why the group refuses every change, when its labels are malformed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// How disagreeing originals were reconciled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conflict: Option<String>,
    /// Every member, oldest first.
    pub members: Vec<MemberView>,
    /// Standbys the group asks for (`replicator.warm`); 0 for a Swarm group.
    pub warm: u32,
    /// Paused clones kept ready beside the members (and ones warming up):
    /// not members, not counted, never routed to.
    pub standbys: Vec<MemberView>,
    /// The autoscaler's settings and last decision, for an autoscaled group.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub autoscale: Option<AutoscaleView>,
    /// `replicator.schedule`: whether one is active, and the minimum it sets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<crate::rules::schedule::ScheduleView>,
    /// For a Swarm group: the nodes holding its tasks, and whether their agents report.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nodes: Option<Vec<NodeView>>,
}

/// A member as the API shows it: its status, and what the API adds.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct MemberView {
    /// Who it is, where it stands, whether it takes traffic.
    #[serde(flatten)]
    pub status: MemberStatus,
    /// Not made by replicator.
    pub original: bool,
    /// RFC 3339.
    pub created: String,
}

impl GroupView {
    /// The view of `group`, with the autoscaler's part when it autoscales.
    pub fn of(group: &Group, autoscale: &AutoscaleHandle) -> Self {
        let (min, max, error) = match &group.bounds {
            Ok(b) => (Some(b.min), Some(b.max), None),
            Err(reason) => (None, None, Some(reason.clone())),
        };
        GroupView {
            name: group.name().to_owned(),
            kind: group.kind(),
            replicas: group.running(),
            asleep: group.asleep(),
            min,
            max,
            error,
            conflict: group.conflict.clone(),
            members: group.members.iter().map(MemberView::of).collect(),
            warm: group.warm,
            standbys: group.standbys.iter().map(MemberView::of).collect(),
            autoscale: autoscale.view(group),
            nodes: (group.kind() == GroupKind::Swarm).then(|| autoscale.nodes(group)),
            schedule: group.schedule,
        }
    }
}

impl MemberView {
    fn of(m: &Member) -> Self {
        MemberView { status: m.status(), original: m.original, created: crate::base::clock::rfc3339(m.created) }
    }
}
