//! The domain model the inventory hands to every reader: groups, their
//! members and lifecycle states, bounds (or why they are invalid), and the
//! autoscale policy (or its error). Presentation is each reader's business.

use serde::Serialize;

pub use crate::model::Health;
use crate::model::{PublishedPort, RunState};
use crate::rules::backends::{backend, reach, Backend, Vantage};
use crate::rules::bounds::{Bounds, GroupIdentity, GroupKind};
use crate::rules::policy::Policy;

/// Where a member stands in its life, as replicator counts and routes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MemberState {
    /// replicator is creating it; the engine may not show it yet.
    Creating,
    /// Created by replicator, which is starting it.
    Starting,
    /// Created but not started, and nobody is starting it.
    Created,
    /// Running.
    Running,
    /// Paused by someone.
    Paused,
    /// The engine is restarting it (restart policy).
    Restarting,
    /// Leaving every balancer before it is stopped: no longer counted.
    Draining,
    /// replicator is stopping and removing it.
    Stopping,
    /// Stopped, dead, or being removed by the engine.
    Exited,
    /// An original replicator paused (or stopped) to bring its group to
    /// zero: holds no place, serves nothing, wakes on the next scale-up.
    Sleeping,
}

impl MemberState {
    /// The state the engine reports, where replicator has no intent of its own.
    pub fn from_engine(state: RunState) -> Self {
        match state {
            RunState::Created => Self::Created,
            RunState::Running => Self::Running,
            RunState::Paused => Self::Paused,
            RunState::Restarting => Self::Restarting,
            RunState::Removing | RunState::Exited | RunState::Dead | RunState::Unknown => Self::Exited,
        }
    }

    /// Whether the member holds a place in its group (counts against `max`).
    pub fn holds_place(self) -> bool {
        matches!(
            self,
            Self::Creating | Self::Starting | Self::Created | Self::Running | Self::Paused | Self::Restarting
        )
    }

    /// Whether balancers may send it requests (see [`Member::ready`]).
    pub fn serves(self) -> bool {
        self == Self::Running
    }

    /// Whether replicator itself is bringing the member up right now.
    pub fn in_flight(self) -> bool {
        matches!(self, Self::Creating | Self::Starting)
    }
}

/// One member of a group: a container, a Swarm task, or a replica being made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Container id (a task id for a task without a container yet; empty while creating).
    pub id: String,
    /// Container (or task) name.
    pub name: String,
    /// Where it stands.
    pub state: MemberState,
    /// The engine's health report, when the container has a healthcheck.
    pub health: Option<Health>,
    /// What replicator's own probe found, when the group declares one
    /// (`replicator.ready`).
    pub probe: Option<Health>,
    /// Not made by replicator: never chosen by a scale-down.
    pub original: bool,
    /// Unix seconds.
    pub created: i64,
    /// Address on each attached network, by network name.
    pub networks: std::collections::BTreeMap<String, String>,
    /// Ports published on the host.
    pub published: Vec<PublishedPort>,
    /// The Swarm node a task is placed on; `None` for a container of this engine.
    pub node: Option<String>,
}

/// What readers outside the inventory say of a member at one moment: who
/// it is, where it stands, whether it takes traffic. The API's view and
/// the event stream's record both carry it, each with what else it needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct MemberStatus {
    /// Container id (empty while replicator is still creating it).
    pub id: String,
    /// Container or task name.
    pub name: String,
    /// Lifecycle state.
    pub state: MemberState,
    /// Running and, if it has a healthcheck, healthy, and if its group
    /// declares a probe (`replicator.ready`), passing it: routed to and counted.
    pub ready: bool,
    /// The engine's health report; `null` without a healthcheck.
    pub health: Option<Health>,
    /// What replicator's own probe found; `null` when the group declares none.
    #[serde(default)]
    pub probe: Option<Health>,
}

impl Member {
    /// Its status, as the API and the event stream show it.
    pub fn status(&self) -> MemberStatus {
        MemberStatus {
            id: self.id.clone(),
            name: self.name.clone(),
            state: self.state,
            ready: self.ready(),
            health: self.health,
            probe: self.probe,
        }
    }

    /// Ready to serve: running and, if it has a healthcheck, reported
    /// healthy, and if its group declares a probe, passing it (both when
    /// both exist). Only ready members are routed to and counted by the autoscaler.
    pub fn ready(&self) -> bool {
        self.state.serves() && self.checks_pass()
    }

    /// Whether its healthcheck and probe pass (those it has), whatever its state.
    pub fn checks_pass(&self) -> bool {
        let passes = |h: Option<Health>| h.is_none_or(|h| h == Health::Healthy);
        passes(self.health) && passes(self.probe)
    }

    /// Whether anything tells when it is ready beyond running: a healthcheck or a probe.
    pub fn is_checked(&self) -> bool {
        self.health.is_some() || self.probe.is_some()
    }
}

/// The Swarm service behind a `swarm` group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRef {
    /// Service id.
    pub id: String,
    /// Desired replicas; `None` for a global-mode service.
    pub replicas: Option<u64>,
    /// The state of a rolling update under way or paused (`updating`, `paused`...).
    pub rolling_out: Option<String>,
}

/// A managed group, as every reader sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// Name, kind, original and naming scheme.
    pub identity: GroupIdentity,
    /// Size bounds, or why the group's labels make it refuse every change.
    pub bounds: Result<Bounds, String>,
    /// Members, oldest first.
    pub members: Vec<Member>,
    /// `None`: not autoscaled; `Some(Err)`: asked to be, but the labels are wrong.
    pub policy: Option<Result<Policy, String>>,
    /// Originals disagree on a rule; which one applies and why.
    pub conflict: Option<String>,
    /// The service, for a Swarm group.
    pub service: Option<ServiceRef>,
    /// Standbys the group asks for (`replicator.warm`).
    pub warm: u32,
    /// Clones kept ready and paused beside the members: not members, never
    /// counted or routed to; a scale-up unpauses them first.
    pub standbys: Vec<Member>,
    /// `replicator.schedule`: whether one is active and the minimum it sets.
    pub schedule: Option<crate::rules::schedule::ScheduleView>,
    /// Where the wake listener sends the group's requests (`replicator.wake.port`);
    /// `None`: the group did not opt in, and the wake listener refuses its requests.
    pub wake: Option<crate::rules::labels::WakeRoute>,
    /// The readiness probe replicator runs on its members (`replicator.ready`).
    pub probe: Option<crate::rules::readiness::ProbeSpec>,
    /// The quiet period after which it sleeps when no request reached it
    /// (`replicator.sleep.after`).
    pub sleep_after: Option<std::time::Duration>,
    /// The TCP front replicator opens for it (`replicator.front.port`).
    pub front: Option<crate::rules::front::FrontSpec>,
    /// How many members a wake brings it to (`replicator.wake.replicas`);
    /// `None`: its originals only.
    pub wake_to: Option<u32>,
}

impl Group {
    /// A group of `members` with these bounds, and nothing else declared
    /// (no policy, standbys, schedule, wake route, probe, sleep or front):
    /// what each builder then adds to.
    pub fn new(identity: GroupIdentity, bounds: Result<Bounds, String>, members: Vec<Member>) -> Self {
        Group {
            identity,
            bounds,
            members,
            policy: None,
            conflict: None,
            service: None,
            warm: 0,
            standbys: Vec::new(),
            schedule: None,
            wake: None,
            probe: None,
            sleep_after: None,
            front: None,
            wake_to: None,
        }
    }

    /// Ready members as balancer backends for `port`: their address on
    /// `network`, or the host port they publish when no network is given.
    /// A member that is not ready (starting, unhealthy, draining) gets no requests.
    pub fn backends(&self, port: u16, network: Option<&str>) -> Vec<Backend> {
        self.members
            .iter()
            .filter(|m| m.ready())
            .filter_map(|m| backend(&m.id, &m.name, &m.networks, &m.published, port, network))
            .collect()
    }

    /// Ready members as replicator itself reaches them from `vantage` (see
    /// [`crate::rules::backends::reach`]); an error when some are ready but
    /// none can be reached, with the first reason.
    pub fn reachable(&self, port: u16, network: Option<&str>, vantage: &Vantage) -> Result<Vec<Backend>, String> {
        let mut first_reason = None;
        let mut found = Vec::new();
        for m in self.members.iter().filter(|m| m.ready()) {
            match reach((&m.id, &m.name), &m.networks, &m.published, port, network, vantage) {
                Ok(b) => found.push(b),
                Err(why) => first_reason = first_reason.or(Some(why)),
            }
        }
        match first_reason {
            Some(why) if found.is_empty() => Err(why),
            _ => Ok(found),
        }
    }

    /// The name the API addresses it by.
    pub fn name(&self) -> &str {
        &self.identity.name
    }

    /// How its members are found and scaled.
    pub fn kind(&self) -> GroupKind {
        self.identity.kind
    }

    /// Members that are running now.
    pub fn running(&self) -> usize {
        self.members.iter().filter(|m| m.state == MemberState::Running).count()
    }

    /// At zero: every original asleep, no member holding a place.
    pub fn asleep(&self) -> bool {
        self.size() == 0 && self.members.iter().any(|m| m.state == MemberState::Sleeping)
    }

    /// Members ready to serve.
    pub fn ready(&self) -> usize {
        self.members.iter().filter(|m| m.ready()).count()
    }

    /// Members holding a place against the group's maximum. For a Swarm
    /// service, the replicas it asks for count even before the orchestrator
    /// has made their tasks, so a decision never overshoots while they come.
    pub fn size(&self) -> usize {
        let placed = self.members.iter().filter(|m| m.state.holds_place()).count();
        let desired = self.service.as_ref().and_then(|s| s.replicas).unwrap_or(0);
        placed.max(usize::try_from(desired).unwrap_or(usize::MAX))
    }

    /// The container new replicas are cloned from: the oldest live original,
    /// else the newest live member.
    pub fn clone_source(&self) -> Option<&Member> {
        let live = |m: &&Member| m.state.holds_place() && !m.state.in_flight() && !m.id.is_empty();
        let original = self.members.iter().filter(live).filter(|m| m.original).min_by_key(|m| (m.created, &m.id));
        original.or_else(|| self.members.iter().filter(live).max_by_key(|m| (m.created, &m.name)))
    }

    /// Up to `n` replicas a scale-down may remove, newest first: never an
    /// original, never one still being made or already going.
    pub fn newest_replicas(&self, n: usize) -> Vec<&Member> {
        let mut replicas: Vec<&Member> =
            self.members.iter().filter(|m| !m.original && m.state.holds_place() && !m.state.in_flight()).collect();
        // Creation time has one-second resolution; the replica number breaks ties.
        let number = |m: &Member| m.name.rsplit(['-', '_']).next().and_then(|n| n.parse::<u64>().ok());
        replicas.sort_by_key(|m| std::cmp::Reverse((m.created, number(m))));
        replicas.truncate(n);
        replicas
    }
}

#[cfg(test)]
impl Member {
    /// A replica named (and identified) `name` in `state`, for tests.
    pub(crate) fn for_test(name: &str, state: MemberState) -> Self {
        Member {
            id: name.into(),
            name: name.into(),
            state,
            health: None,
            probe: None,
            original: false,
            created: 0,
            networks: Default::default(),
            published: Vec::new(),
            node: None,
        }
    }
}

#[cfg(test)]
impl Group {
    /// A plain group `name` with bounds [1, 10], for tests.
    pub(crate) fn for_test(name: &str, members: Vec<Member>) -> Self {
        let identity = GroupIdentity {
            name: name.into(),
            kind: GroupKind::Containers,
            original_id: name.into(),
            naming: crate::rules::bounds::Naming::Suffix(name.into()),
        };
        Group::new(identity, Ok(Bounds { min: 1, max: 10 }), members)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, created: i64, original: bool, state: MemberState) -> Member {
        Member { created, original, ..Member::for_test(name, state) }
    }

    fn group(members: Vec<Member>) -> Group {
        Group::for_test("web", members)
    }

    #[test]
    fn scale_down_takes_the_newest_replicas_and_never_the_original() {
        let g = group(vec![
            member("web", 300, true, MemberState::Running),
            member("web-2", 100, false, MemberState::Running),
            member("web-3", 200, false, MemberState::Running),
            member("web-4", 200, false, MemberState::Running),
            member("web-5", 400, false, MemberState::Starting),
        ]);
        let names = |v: Vec<&Member>| v.iter().map(|m| m.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(g.newest_replicas(2)), ["web-4", "web-3"]);
        assert_eq!(names(g.newest_replicas(9)), ["web-4", "web-3", "web-2"], "one still starting is not chosen");
    }

    #[test]
    fn growth_clones_the_original_while_it_lives() {
        let g =
            group(vec![member("web", 1, true, MemberState::Running), member("web-2", 5, false, MemberState::Running)]);
        assert_eq!(g.clone_source().map(|m| m.id.as_str()), Some("web"));
        let gone =
            group(vec![member("web", 1, true, MemberState::Exited), member("web-2", 5, false, MemberState::Running)]);
        assert_eq!(gone.clone_source().map(|m| m.id.as_str()), Some("web-2"));
    }

    #[test]
    fn a_service_counts_the_replicas_it_asks_for_before_their_tasks_run() {
        let mut g = group(vec![
            member("t1", 1, false, MemberState::Running),
            member("t2", 1, false, MemberState::Starting), // pending, or pulling on its node
        ]);
        g.service = Some(ServiceRef { id: "svc".into(), replicas: Some(4), rolling_out: None });
        assert_eq!((g.size(), g.running()), (4, 1), "two tasks not even made yet count");
        g.service = Some(ServiceRef { id: "svc".into(), replicas: Some(1), rolling_out: None });
        assert_eq!(g.size(), 2, "tasks still holding a place after a scale-down count until they go");
    }

    #[test]
    fn members_in_flight_hold_a_place_but_do_not_run() {
        let g = group(vec![
            member("web", 1, true, MemberState::Running),
            member("web-2", 2, false, MemberState::Creating),
            member("web-3", 3, false, MemberState::Stopping),
            member("web-4", 4, false, MemberState::Exited),
        ]);
        assert_eq!((g.size(), g.running()), (2, 1));
    }
}

#[cfg(test)]
mod readiness {
    use super::*;

    fn member(state: MemberState, health: Option<Health>) -> Member {
        Member { health, ..Member::for_test("a", state) }
    }

    #[test]
    fn ready_means_running_and_healthy_when_there_is_a_healthcheck() {
        assert!(member(MemberState::Running, None).ready(), "no healthcheck: running is ready");
        assert!(member(MemberState::Running, Some(Health::Healthy)).ready());
        assert!(!member(MemberState::Running, Some(Health::Starting)).ready());
        assert!(!member(MemberState::Running, Some(Health::Unhealthy)).ready());
        assert!(!member(MemberState::Draining, Some(Health::Healthy)).ready(), "draining leaves the balancers");
        assert!(!member(MemberState::Starting, None).ready());
    }

    #[test]
    fn a_draining_member_no_longer_holds_a_place() {
        assert!(!MemberState::Draining.holds_place());
    }
}
